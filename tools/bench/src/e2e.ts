import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DeviceRecord } from '@iot/contracts';
import { removeDir, spawnManaged, startPipeline, tempDir, type Pipeline } from '@iot/testing';
import { countDelivery, rawMessages, waitDrained } from './delivery';
import { diffBuckets, parseHistogram, quantile } from './histogram';
import { BENCH_TENANT } from './load';
import { ProcessMeter, type ProcessUsage } from './proc';

export interface E2eRun {
  targetRate: number;
  /** What the simulator achieved while sending. */
  sentPerS: number;
  sent: number;
  acked: number;
  /** Messages whose rows are all stored. */
  storedMessages: number;
  /** Stored messages over the time from the first send to the last commit. */
  msgsPerS: number;
  lostPoints: number;
  duplicatedPoints: number;
  /** Time from the last send to the pipeline having nothing pending. */
  drainMs: number;
  p50Ms?: number;
  p95Ms?: number;
  p99Ms?: number;
  sustained: boolean;
  processes: Record<string, ProcessUsage>;
}

export const E2E_DEVICES = 200;

/** Device ids as the simulator names them (`bench-0001`, ...). */
function simulatorDevices(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `bench-${String(i + 1).padStart(4, '0')}`);
}

/** `normalizeInDemux`: demux normalizes and the decoded hop is skipped (docs/adr/0006). */
export async function startE2ePipeline(root: string, normalizeInDemux = false): Promise<Pipeline> {
  const devices: DeviceRecord[] = simulatorDevices(E2E_DEVICES).map((device) => ({
    device,
    tenant: BENCH_TENANT,
    model: 'generic',
    state: 'active',
  }));
  return startPipeline(devices, {
    root,
    durableDatabase: true,
    bridgeEnv: {
      RATE_LIMIT: '1000000/1000000',
      MQTT_CONNECTIONS: process.env.BENCH_BRIDGE_CONNECTIONS ?? '4',
    },
    serviceEnv: {
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
      NORMALIZE_IN_DEMUX: String(normalizeInDemux),
    },
    keepLogs: !!process.env.BENCH_KEEP_LOGS,
  });
}

async function writerLatency(p: Pipeline) {
  const text = await (await fetch(`${p.service('tsdb-writer').url}/metrics`)).text();
  return parseHistogram(text, 'iot_event_to_commit_seconds');
}

/**
 * Simulated devices → MQTT QoS 1 → bridge → demux → normalizer → writer → rows, at a fixed
 * rate for `durationS`; then every sent message is looked up in the table by its device and
 * timestamp: lost and duplicated points are counted exactly.
 */
export async function runE2e(root: string, p: Pipeline, rate: number, durationS: number): Promise<E2eRun> {
  const dir = tempDir('bench-e2e');
  try {
    const record = join(dir, 'sent.csv');
    const before = await writerLatency(p);
    const rawBefore = await rawMessages(p);
    const svc = (name: string) => ({ pid: p.service(name).process.pid });
    const sim = spawnManaged({
      name: 'simulator',
      cmd: process.execPath,
      args: [
        join(root, 'dist', 'tools', 'simulator', 'src', 'main.js'),
        ...['--url', p.mqtt.url, '--devices', String(E2E_DEVICES), '--prefix', 'bench-'],
        ...['--format', 'canonical', '--rate', String(rate), '--duration', String(durationS)],
        ...['--record', record],
      ],
      logFile: join(dir, 'simulator.log'),
      cwd: root,
    });
    const meter = new ProcessMeter({
      'mqtt-bridge': svc('mqtt-bridge'),
      demux: svc('demux'),
      normalizer: svc('normalizer'),
      'tsdb-writer': svc('tsdb-writer'),
      'nats-server': { pid: p.nats.nodes[0]!.process.pid },
      postgres: { pid: p.pg.process.pid, tree: true },
      mosquitto: { pid: p.mqtt.process.pid },
      simulator: { pid: sim.pid },
    }).begin();
    await sim.exited();
    const log = readFileSync(join(dir, 'simulator.log'), 'utf8');
    const final = /final sent=(\d+) acked=(\d+) failed=\d+ sending_ms=(\d+)/.exec(log);
    if (!final) throw new Error(`the simulator did not finish; its log:\n${log.slice(-2000)}`);
    const [sent, acked, sendingMs] = [Number(final[1]), Number(final[2]), Number(final[3])];
    // The simulator's own exit waited for PUBACKs; from here on, only the pipeline's backlog.
    const sendEnd = Date.now();
    // Drained: the bridge has taken every acknowledged message from the broker's queue into
    // the raw stream, and no consumer has anything pending.
    const { drainedAt, complete } = await waitDrained(p, rawBefore, acked);
    const processes = meter.end();
    const latency = diffBuckets(await writerLatency(p), before);

    const count = await countDelivery(p, record, BENCH_TENANT);
    const { lostPoints, duplicatedPoints, storedMessages } = count;
    const startedAt = sendEnd - sendingMs;
    const drainMs = drainedAt - sendEnd;
    const q = (x: number) => {
      const v = quantile(latency, x);
      return v === undefined ? undefined : v * 1000;
    };
    const sentPerS = (sent * 1000) / sendingMs;
    return {
      targetRate: rate,
      sentPerS,
      sent,
      acked,
      storedMessages,
      msgsPerS: (storedMessages * 1000) / (drainedAt - startedAt),
      lostPoints,
      duplicatedPoints,
      drainMs,
      p50Ms: q(0.5),
      p95Ms: q(0.95),
      p99Ms: q(0.99),
      // It kept up: the devices sent at the rate, nothing was lost, and the backlog at the end
      // was gone within 5 seconds.
      sustained: sentPerS >= 0.95 * rate && lostPoints === 0 && drainMs <= 5_000 && complete,
      processes,
    };
  } finally {
    removeDir(dir);
  }
}
