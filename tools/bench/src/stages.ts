import { join } from 'node:path';
import { Streams } from '@iot/contracts';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { freePort, sleep, spawnService, tempDir, waitReady, type ServiceProcess } from '@iot/testing';
import { benchDevices, METRICS_PER_MESSAGE, mqttFlood } from './load';
import { ProcessMeter, type ProcessUsage } from './proc';
import { gcSoFar, sumSamples } from './histogram';
import { RawTaken } from './delivery';
import type { BenchServers } from './servers';

export interface StageResult {
  /** Where the memory is, from the service's /metrics after the run (MiB). */
  memory?: string;
  msgsPerS: number;
  cpuUsPerMsg: number;
  rssMiB: number;
  processes: Record<string, ProcessUsage>;
  /** The service's garbage collection during the stage, by its /metrics. */
  gc?: { full: number; pausedMs: number };
}

export interface StageContext {
  root: string;
  servers: BenchServers;
  logs: string;
}

export function stageContext(root: string, servers: BenchServers): StageContext {
  return { root, servers, logs: tempDir('bench-logs') };
}

function spawnOne(
  ctx: StageContext,
  name: string,
  env: Record<string, string>,
  port: number,
): ServiceProcess {
  return spawnService({
    root: ctx.root,
    name,
    port,
    env: {
      ...process.env,
      NATS_URL: ctx.servers.nats.url,
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
      ...env,
    },
    logFile: join(ctx.logs, `${name}.log`),
  });
}

async function startService(
  ctx: StageContext,
  name: string,
  env: Record<string, string> = {},
): Promise<ServiceProcess> {
  const svc = spawnOne(ctx, name, env, await freePort());
  await waitReady(svc, 120_000);
  return svc;
}

export const bridgeEnv = (ctx: StageContext): Record<string, string> => ({
  MQTT_URL: ctx.servers.mqtt.url,
  MQTT_CLIENT_ID: 'bench-bridge',
  RATE_LIMIT: '1000000/1000000',
});

/**
 * The bridge with the devices sending: they flood the broker at QoS 1 while it runs; how fast
 * the raw stream fills. The load generator and mosquitto's intake take the same two cores.
 */
export async function bridgeFloodStage(ctx: StageContext, n: number): Promise<StageResult> {
  const bridge = await startService(ctx, 'mqtt-bridge', bridgeEnv(ctx));
  const raw = await RawTaken.start(ctx.servers.nats.urls);
  try {
    const metricsAtStart = await metricsOf(bridge);
    const meter = bridgeMeter(ctx, bridge).begin();
    const t0 = performance.now();
    await mqttFlood(ctx.servers.mqtt.url, benchDevices(50), n);
    while (raw.taken < n) await sleep(50);
    const ms = performance.now() - t0;
    const processes = meter.end();
    return {
      ...result(n, ms, 'mqtt-bridge', processes),
      gc: gcBetween(metricsAtStart, await metricsOf(bridge)),
    };
  } finally {
    await raw.stop();
    await bridge.process.stop(15_000);
  }
}

/**
 * The bridge alone, as the workers are measured on a pre-filled stream: the devices publish
 * `n` messages at QoS 1 into its persistent sessions while it is stopped, then it starts, and
 * the clock runs from its first message in the raw stream to the last. What the bridge does
 * when the broker has work for it (the drain after a restart, or devices on other machines),
 * without the load generator on the cores it needs.
 */
export async function bridgeDrainStage(ctx: StageContext, n: number): Promise<StageResult> {
  // Its sessions (and their share of the subscription) exist once it has subscribed.
  const first = await startService(ctx, 'mqtt-bridge', bridgeEnv(ctx));
  await first.process.stop(15_000);
  await mqttFlood(ctx.servers.mqtt.url, benchDevices(50), n);
  const raw = await RawTaken.start(ctx.servers.nats.urls);
  const bridge = await startServiceLater(ctx, 'mqtt-bridge', bridgeEnv(ctx));
  try {
    const deadline = Date.now() + 120_000;
    while (raw.taken === 0) {
      if (Date.now() > deadline)
        throw new Error(
          'the bridge took nothing from its sessions within 120 s: see its log (BENCH_KEEP_LOGS=1)',
        );
      await sleep(2);
    }
    // Counted from its first pack: the bridge's start (NestJS, connections) is not measured.
    const meter = bridgeMeter(ctx, bridge).begin();
    const t0 = performance.now();
    const before = raw.taken;
    const metricsAtStart = await metricsOf(bridge);
    while (raw.taken < n) await sleep(20);
    const ms = performance.now() - t0;
    const processes = meter.end();
    return {
      ...result(n - before, ms, 'mqtt-bridge', processes),
      gc: gcBetween(metricsAtStart, await metricsOf(bridge)),
    };
  } finally {
    await raw.stop();
    await bridge.process.stop(15_000);
  }
}

/** Empties the raw stream: the stage after the bridge's reads what one bridge stage put there. */
export async function purgeRawStream(servers: BenchServers): Promise<void> {
  const jsm = await jetstreamManager(servers.nc);
  await jsm.streams.purge(Streams.TELEMETRY_RAW_V1.name);
}

function bridgeMeter(ctx: StageContext, bridge: ServiceProcess): ProcessMeter {
  return new ProcessMeter({
    'mqtt-bridge': { pid: bridge.process.pid },
    mosquitto: { pid: ctx.servers.mqtt.process.pid },
    'nats-server': { pid: ctx.servers.nats.nodes[0]!.process.pid },
  });
}

function result(n: number, ms: number, name: string, processes: Record<string, ProcessUsage>): StageResult {
  return {
    msgsPerS: (n * 1000) / ms,
    cpuUsPerMsg: (processes[name]!.cpuMs * 1000) / n,
    rssMiB: processes[name]!.maxRssMiB,
    processes,
  };
}

/**
 * A worker alone against a stream filled by the stage before it: from its first delivery to
 * its consumer having nothing pending or unacked.
 */
export async function workerStage(
  ctx: StageContext,
  name: 'demux' | 'normalizer' | 'tsdb-writer',
  stream: string,
  env: Record<string, string> = {},
): Promise<StageResult & { messages: number }> {
  const jsm = await jetstreamManager(ctx.servers.nc);
  const svc = await startServiceLater(ctx, name, env);
  const meterOf = () =>
    new ProcessMeter({
      [name]: { pid: svc.process.pid },
      'nats-server': { pid: ctx.servers.nats.nodes[0]!.process.pid },
      ...(name === 'tsdb-writer' ? { postgres: { pid: ctx.servers.pg.process.pid, tree: true } } : {}),
    });
  try {
    // Wait for the first delivery; the messages acked by then are not counted.
    let info = await waitConsumer(jsm, stream, name);
    while (info.delivered.consumer_seq === 0) {
      await sleep(5);
      info = await jsm.consumers.info(stream, name);
    }
    // Counted by the service, not by its consumer's acks: a pack (docs/adr/0011) is one ack
    // for many messages. Read before the clock starts, so its request is not measured.
    // A service may take its first messages before its HTTP server listens (demux does): its
    // count then starts at 0, and the few it settled before the clock started (one poll of
    // 5 ms) count in its favour.
    const metricsAtStart = await metricsOf(svc);
    const settledAtStart = settledIn(metricsAtStart, name) ?? 0;
    const meter = meterOf().begin();
    const t0 = performance.now();
    // Polled every 50 ms: a consumer info is work for the server too, and shows in its CPU.
    while (info.num_pending > 0 || info.num_ack_pending > 0) {
      await sleep(50);
      info = await jsm.consumers.info(stream, name);
    }
    const ms = performance.now() - t0;
    const processes = meter.end();
    const metricsAtEnd = await metricsOf(svc);
    const settledAtEnd = settledIn(metricsAtEnd, name);
    if (settledAtEnd === undefined)
      throw new Error(`${name}'s /metrics did not answer after its stage: see its log (BENCH_KEEP_LOGS=1)`);
    const messages = settledAtEnd - settledAtStart;
    return {
      ...result(messages, ms, name, processes),
      messages,
      memory: memoryIn(metricsAtEnd),
      gc: gcBetween(metricsAtStart, metricsAtEnd),
    };
  } finally {
    await svc.process.stop(15_000);
  }
}

/** Starts the service without waiting for /readyz: the clock starts at its first delivery. */
async function startServiceLater(ctx: StageContext, name: string, env: Record<string, string>) {
  return spawnOne(ctx, name, env, await freePort());
}

async function waitConsumer(jsm: JetStreamManager, stream: string, durable: string) {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const info = await jsm.consumers.info(stream, durable).catch(() => undefined);
    if (info) return info;
    await sleep(5);
  }
  throw new Error(`${durable} did not create its consumer on ${stream} within 120 s: see its log`);
}

export const POINTS = METRICS_PER_MESSAGE;

/** A service's /metrics text, or undefined if it does not answer (yet). */
async function metricsOf(svc: ServiceProcess): Promise<string | undefined> {
  try {
    return await (await fetch(`${svc.url}/metrics`)).text();
  } catch {
    return undefined;
  }
}

/** The messages a service has settled (acked handled or unhandled, or dead-lettered), by its /metrics. */
function settledIn(text: string | undefined, stage: string): number | undefined {
  if (text === undefined) return undefined;
  return sumSamples(
    text,
    'iot_messages_processed_total',
    (labels) => labels.includes(`stage="${stage}"`) && /outcome="(ok|dlq|skipped)"/.test(labels),
  );
}

/** The garbage collection between two scrapes of a service's /metrics, if both answered. */
function gcBetween(start: string | undefined, end: string | undefined): StageResult['gc'] {
  if (start === undefined || end === undefined) return undefined;
  const before = gcSoFar(start);
  const after = gcSoFar(end);
  return { full: after.full - before.full, pausedMs: (after.pausedS - before.pausedS) * 1000 };
}

/** V8 heap, external memory and RSS of a service, by its /metrics (MiB). */
function memoryIn(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const mib = (name: string) => {
    const m = new RegExp(`^${name}\\{[^}]*\\} (\\S+)`, 'm').exec(text);
    return m ? Math.round(Number(m[1]) / 2 ** 20) : '?';
  };
  return `heap ${mib('nodejs_heap_size_used_bytes')}/${mib('nodejs_heap_size_total_bytes')} MiB, external ${mib('nodejs_external_memory_bytes')} MiB, rss ${mib('process_resident_memory_bytes')} MiB`;
}
