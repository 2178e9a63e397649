import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { DeviceRecord } from '@iot/contracts';
import { removeDir, sleep, spawnManaged, startPipeline, tempDir, type Pipeline } from '@iot/testing';
import { diffBuckets, parseHistogram, quantile } from './histogram';
import { BENCH_TENANT, METRICS_PER_MESSAGE } from './load';
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

export async function startE2ePipeline(root: string): Promise<Pipeline> {
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
    serviceEnv: { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' },
    keepLogs: !!process.env.BENCH_KEEP_LOGS,
  });
}

async function writerLatency(p: Pipeline) {
  const text = await (await fetch(`${p.service('tsdb-writer').url}/metrics`)).text();
  return parseHistogram(text, 'iot_event_to_commit_seconds');
}

async function rawMessages(p: Pipeline): Promise<number> {
  const nc = await connect({ servers: p.nats.urls });
  try {
    return (await (await jetstreamManager(nc)).streams.info('TELEMETRY_RAW_V1')).state.messages;
  } finally {
    await nc.close();
  }
}

async function pipelineIdle(p: Pipeline): Promise<boolean> {
  const nc = await connect({ servers: p.nats.urls });
  try {
    const jsm = await jetstreamManager(nc);
    for (const [stream, consumer] of [
      ['TELEMETRY_RAW_V1', 'demux'],
      ['TELEMETRY_DECODED_V1', 'normalizer'],
      ['TELEMETRY_NORMALIZED_V1', 'tsdb-writer'],
    ] as const) {
      const c = await jsm.consumers.info(stream, consumer);
      if (c.num_pending > 0 || c.num_ack_pending > 0) return false;
    }
    return true;
  } finally {
    await nc.close();
  }
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
    // the raw stream, and no consumer has anything pending. Given up on when nothing moves
    // for 20 s (what is missing then is lost) or after 10 minutes.
    const drainDeadline = sendEnd + 600_000;
    let lastRaw = -1;
    let movedAt = Date.now();
    for (;;) {
      const raw = (await rawMessages(p)) - rawBefore;
      if (raw >= acked && (await pipelineIdle(p))) break;
      if (raw !== lastRaw) [lastRaw, movedAt] = [raw, Date.now()];
      if (Date.now() - movedAt > 20_000 && (await pipelineIdle(p))) break;
      if (Date.now() > drainDeadline) break;
      await sleep(50);
    }
    const drainedAt = Date.now();
    const processes = meter.end();
    const latency = diffBuckets(await writerLatency(p), before);

    const rows = readFileSync(record, 'utf8').trim().split('\n').slice(1);
    const firstTs = Math.min(...rows.slice(0, 1000).map((r) => Number(r.split(',')[2])));
    const stored = await p.pg.query<{ device_id: string; t: string; n: number }>(
      `SELECT device_id, round(extract(epoch FROM ts) * 1000)::bigint::text AS t, count(*)::int AS n
         FROM telemetry WHERE tenant_id = $1 AND ts >= to_timestamp($2 / 1000.0) GROUP BY 1, 2`,
      [BENCH_TENANT, firstTs],
    );
    const found = new Map(stored.map((r) => [`${r.device_id}|${r.t}`, r.n]));
    let lostPoints = 0;
    let duplicatedPoints = 0;
    let storedMessages = 0;
    for (const line of rows) {
      const [device, , ts, ackedAt] = line.split(',');
      const key = `${device}|${ts}`;
      const n = found.get(key) ?? 0;
      found.delete(key);
      if (n >= METRICS_PER_MESSAGE) storedMessages++;
      duplicatedPoints += Math.max(0, n - METRICS_PER_MESSAGE);
      // A message the broker never acknowledged may be missing: its device would send it again.
      if (ackedAt !== '0') lostPoints += Math.max(0, METRICS_PER_MESSAGE - n);
    }
    // Rows of this run that no sent message explains.
    for (const n of found.values()) duplicatedPoints += n;
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
      sustained: sentPerS >= 0.95 * rate && lostPoints === 0 && drainMs <= 5_000 && drainedAt < drainDeadline,
      processes,
    };
  } finally {
    removeDir(dir);
  }
}
