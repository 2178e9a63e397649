import { existsSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import type { DeviceRecord } from '@iot/contracts';
import {
  removeDir,
  serviceNodeFlags,
  sleep,
  spawnManaged,
  startPipeline,
  tempDir,
  type ManagedProcess,
  type Pipeline,
} from '@iot/testing';
import {
  countDelivery,
  pipelineBacklog,
  RawTaken,
  waitDrained,
  type DeviceSide,
  type PipelineBacklog,
} from './delivery';
import { diffBuckets, parseHistogram, quantile, sumSamples, type Buckets } from './histogram';
import { BENCH_TENANT } from './load';
import { heldRate } from './search';
import { MachineMeter, ProcessMeter, type MachineShare, type ProcessUsage } from './proc';

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
  /**
   * From the bridge receiving a message to the commit (ms): the pipeline's own part of the
   * latency, without the device's side (on this machine the simulator's queueing and mosquitto).
   */
  ingestP50Ms?: number;
  ingestP99Ms?: number;
  /**
   * The p99 of each 5-second window from the first send to the drain (ms; undefined for a
   * window without commits): says whether a tail is spread out or one stall.
   */
  p99ByWindowMs: Array<number | undefined>;
  /** The same windows' p99 from the bridge's receipt to the commit (ms): the platform's part. */
  ingestP99ByWindowMs: Array<number | undefined>;
  /** The machine's CPU time in each of those windows: busy, waiting on the disk, stolen (%). */
  machineByWindow: Array<MachineShare | undefined>;
  /** Each process's CPU in each window, in percent of one core. */
  cpuByWindowPct: Array<Record<string, number> | undefined>;
  /**
   * At the end of each window, what JetStream held for each worker consumer (pending and
   * unacknowledged messages): with `bridgedPerSByWindow`, says where a backlog waited, in the
   * broker (the bridge taking less than the devices send) or in a stream.
   */
  backlogByWindow: Array<Record<string, number> | undefined>;
  /** Messages the bridge put in the raw stream per second, in each window. */
  bridgedPerSByWindow: Array<number | undefined>;
  /** The same over the whole run. */
  machine?: MachineShare;
  /** Messages per batch, on average, at the consumers that batch (demux, tsdb-writer). */
  batchSizes: Record<string, number | undefined>;
  /** How late the simulator sent and how long PUBACKs took (from its record). */
  deviceSide?: DeviceSide;
  sustained: boolean;
  processes: Record<string, ProcessUsage>;
}

export const E2E_DEVICES = 200;

/** The simulator's scheduling priority (nice): below the platform's processes. */
const SIMULATOR_NICE = 10;

/** Device ids as the simulator names them (`bench-0001`, ...). */
function simulatorDevices(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `bench-${String(i + 1).padStart(4, '0')}`);
}

/**
 * `normalizeInDemux`: demux normalizes and the decoded hop is skipped (docs/adr/0006).
 * `natsGoMaxProcs`: nats-server's GOMAXPROCS, as `./platform up` sets it on a machine it
 * shares (libs/testing `sharedMachineGoMaxProcs`); Go's default when undefined.
 */
export async function startE2ePipeline(
  root: string,
  normalizeInDemux = false,
  natsGoMaxProcs?: number,
): Promise<Pipeline> {
  const devices: DeviceRecord[] = simulatorDevices(E2E_DEVICES).map((device) => ({
    device,
    tenant: BENCH_TENANT,
    model: 'generic',
    state: 'active',
  }));
  return startPipeline(devices, {
    root,
    durableDatabase: true,
    natsGoMaxProcs,
    bridgeEnv: {
      RATE_LIMIT: '1000000/1000000',
      MQTT_CONNECTIONS: process.env.BENCH_BRIDGE_CONNECTIONS ?? '4',
    },
    serviceEnv: {
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
      NORMALIZE_IN_DEMUX: String(normalizeInDemux),
      // BENCH_LINGER_MS: every consumer's linger, to measure latency against CPU.
      ...(process.env.BENCH_LINGER_MS ? { BATCH_LINGER_MS: process.env.BENCH_LINGER_MS } : {}),
    },
    keepLogs: !!process.env.BENCH_KEEP_LOGS,
  });
}

/** The consumers whose batches are counted: their size is what the linger trades for latency. */
const BATCHING = ['demux', 'tsdb-writer'];

/** Batches processed and messages taken by a service's consumer, from its /metrics. */
async function batchCounts(p: Pipeline, service: string): Promise<{ batches: number; messages: number }> {
  const text = await (await fetch(`${p.service(service).url}/metrics`)).text();
  return {
    batches: sumSamples(text, 'iot_processing_duration_seconds_count'),
    messages: sumSamples(text, 'iot_messages_received_total'),
  };
}

async function allBatchCounts(p: Pipeline) {
  return Promise.all(BATCHING.map((s) => batchCounts(p, s)));
}

const EVENT_TO_COMMIT = 'iot_event_to_commit_seconds';
const INGEST_TO_COMMIT = 'iot_ingest_to_commit_seconds';

const WINDOW_MS = 5_000;

/** Both of the writer's latency histograms, from one scrape. */
interface Latencies {
  /** From the device's timestamp to the commit. */
  event: Buckets;
  /** From the bridge's receipt to the commit. */
  ingest: Buckets;
}

async function writerLatencies(p: Pipeline): Promise<Latencies> {
  const text = await (await fetch(`${p.service('tsdb-writer').url}/metrics`)).text();
  return { event: parseHistogram(text, EVENT_TO_COMMIT), ingest: parseHistogram(text, INGEST_TO_COMMIT) };
}

/**
 * Scrapes the writer's latency histograms every 5 s and keeps each window's p99, from the
 * device and from the bridge: a slow window says whether the platform or the device's side
 * (on this machine the simulator and the broker) was slow in it.
 */
class LatencyWindows {
  private readonly p99s: Array<number | undefined> = [];
  private readonly ingestP99s: Array<number | undefined> = [];
  private readonly cpu: Array<Record<string, number> | undefined> = [];
  private readonly backlog: Array<Record<string, number> | undefined> = [];
  private readonly bridged: Array<number | undefined> = [];
  private windowAt = performance.now();
  /** When `lastRaw` was read. */
  private lastRawAt = this.windowAt;
  private lastRaw = 0;
  /** When the first window began (epoch ms). */
  readonly fromMs = Date.now();
  /** Where the machine's CPU time went in each window: a stall shows as its cause. */
  readonly machine: Array<MachineShare | undefined> = [];
  private readonly machineMeter = new MachineMeter();
  /** The whole run's share, from the first window's start. */
  private readonly runMeter = new MachineMeter();
  private readonly timer: NodeJS.Timeout;
  private scraping: Promise<void> = Promise.resolve();

  /**
   * At each window's end `meter` gives each process's CPU, `readBacklog` what JetStream
   * holds, and `raw` what the bridge has taken so far (its growth since `lastRaw`).
   */
  constructor(
    private readonly scrape: () => Promise<Latencies>,
    private last: Latencies,
    private readonly meter: ProcessMeter,
    private readonly readBacklog: () => Promise<PipelineBacklog>,
    private readonly raw: RawTaken,
  ) {
    this.timer = setInterval(() => (this.scraping = this.take()), WINDOW_MS);
  }

  private async take(): Promise<void> {
    this.machine.push(this.machineMeter.take());
    const at = performance.now();
    const seconds = (at - this.windowAt) / 1000;
    this.windowAt = at;
    const cpuMs = this.meter.window();
    this.cpu.push(
      seconds > 0
        ? Object.fromEntries(Object.entries(cpuMs).map(([n, ms]) => [n, Math.round(ms / seconds / 10)]))
        : undefined,
    );
    const [now, backlog] = await Promise.all([
      this.scrape().catch(() => undefined),
      this.readBacklog().catch(() => undefined),
    ]);
    this.backlog.push(backlog?.consumers);
    const sinceRaw = (at - this.lastRawAt) / 1000;
    const taken = this.raw.taken;
    this.bridged.push(sinceRaw > 0 ? Math.round((taken - this.lastRaw) / sinceRaw) : undefined);
    this.lastRaw = taken;
    this.lastRawAt = at;
    const p99 = (after: Buckets, before: Buckets) => {
      const v = quantile(diffBuckets(after, before), 0.99);
      return v === undefined ? undefined : Math.round(v * 1000);
    };
    this.p99s.push(now ? p99(now.event, this.last.event) : undefined);
    this.ingestP99s.push(now ? p99(now.ingest, this.last.ingest) : undefined);
    if (now) this.last = now;
  }

  async end(): Promise<{
    p99s: Array<number | undefined>;
    ingestP99s: Array<number | undefined>;
    machine: Array<MachineShare | undefined>;
    cpu: Array<Record<string, number> | undefined>;
    backlog: Array<Record<string, number> | undefined>;
    bridged: Array<number | undefined>;
    run?: MachineShare;
  }> {
    clearInterval(this.timer);
    await this.scraping;
    await this.take();
    return {
      p99s: this.p99s,
      ingestP99s: this.ingestP99s,
      machine: this.machine,
      cpu: this.cpu,
      backlog: this.backlog,
      bridged: this.bridged,
      run: this.runMeter.take(),
    };
  }
}

/** What the simulator says once its PUBACKs are in (its `final` line). */
interface SimulatorFinal {
  sent: number;
  acked: number;
  sendingMs: number;
  /** Epoch ms when its sending began. */
  startedAt: number;
}

/**
 * Waits for the simulator's `final` line, which it prints once its PUBACKs are in and before
 * it writes its record, so that the drain is timed from the end of the sending and not from
 * the simulator's exit (writing 300,000 lines and closing 200 clients take seconds).
 */
async function simulatorFinal(sim: ManagedProcess, logFile: string): Promise<SimulatorFinal> {
  const line = /final sent=(\d+) acked=(\d+) failed=\d+ sending_ms=(\d+) started_at_ms=(\d+)/;
  for (;;) {
    const exited = !sim.running();
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    const m = line.exec(log);
    if (m)
      return { sent: Number(m[1]), acked: Number(m[2]), sendingMs: Number(m[3]), startedAt: Number(m[4]) };
    if (exited) throw new Error(`the simulator did not finish; its log:\n${log.slice(-2000)}`);
    await sleep(50);
  }
}

/** The pipeline's processes, as the meters name them: the services, then the servers. */
function pipelineProcesses(p: Pipeline): Record<string, { pid: number | undefined; tree?: boolean }> {
  const svc = (name: string) => ({ pid: p.service(name).process.pid });
  return {
    'mqtt-bridge': svc('mqtt-bridge'),
    demux: svc('demux'),
    normalizer: svc('normalizer'),
    'tsdb-writer': svc('tsdb-writer'),
    'nats-server': { pid: p.nats.nodes[0]!.process.pid },
    postgres: { pid: p.pg.process.pid, tree: true },
    mosquitto: { pid: p.mqtt.process.pid },
  };
}

/**
 * The pipeline with nothing arriving, for `seconds`: what each process costs at rest (its
 * timers, heartbeats, a server's housekeeping), which small hardware pays all day.
 */
export async function measureIdle(p: Pipeline, seconds: number): Promise<Record<string, ProcessUsage>> {
  const meter = new ProcessMeter(pipelineProcesses(p)).begin();
  await sleep(seconds * 1000);
  return meter.end();
}

/**
 * Simulated devices → MQTT QoS 1 → bridge → demux → normalizer → writer → rows, at a fixed
 * rate for `durationS`; then every sent message is looked up in the table by its device and
 * timestamp: lost and duplicated points are counted exactly.
 */
export async function runE2e(root: string, p: Pipeline, rate: number, durationS: number): Promise<E2eRun> {
  const dir = tempDir('bench-e2e');
  const raw = await RawTaken.start(p.nats.urls);
  try {
    const record = join(dir, 'sent.csv');
    const before = await writerLatencies(p);
    const batchesBefore = await allBatchCounts(p);
    const sim = spawnManaged({
      name: 'simulator',
      cmd: process.execPath,
      args: [
        // The load generator is profiled with the services (IOT_SERVICE_NODE_FLAGS).
        ...serviceNodeFlags(),
        join(root, 'dist', 'tools', 'simulator', 'src', 'main.js'),
        ...['--url', p.mqtt.url, '--devices', String(E2E_DEVICES), '--prefix', 'bench-'],
        ...['--format', 'canonical', '--rate', String(rate), '--duration', String(durationS)],
        ...['--record', record],
      ],
      logFile: join(dir, 'simulator.log'),
      cwd: root,
    });
    // The simulator stands in for devices on other machines: it takes the CPU the platform
    // leaves (nice 10) rather than competing with it. A starved simulator shows as a send
    // rate below the target, which fails the step; its timestamps are taken before sending.
    if (sim.pid) setPriority(sim.pid, SIMULATOR_NICE);
    const meter = new ProcessMeter({ ...pipelineProcesses(p), simulator: { pid: sim.pid } }).begin();
    const windows = new LatencyWindows(
      () => writerLatencies(p),
      before,
      meter,
      () => pipelineBacklog(p),
      raw,
    );
    const { sent, acked, sendingMs, startedAt } = await simulatorFinal(sim, join(dir, 'simulator.log'));
    // Drained: the bridge has taken every acknowledged message from the broker's queue into
    // the raw stream, and no consumer has anything pending. Timed from the last send: what
    // waited in the simulator's socket, the broker or the bridge counts as backlog too.
    const { drainedAt, complete } = await waitDrained(p, raw, acked);
    await sim.exited(); // its record is written
    const processes = meter.end();
    const {
      p99s: p99ByWindowMs,
      ingestP99s: ingestP99ByWindowMs,
      machine: machineByWindow,
      cpu: cpuByWindowPct,
      backlog: backlogByWindow,
      bridged: bridgedPerSByWindow,
      run: machine,
    } = await windows.end();
    const after = await writerLatencies(p);
    const latency = diffBuckets(after.event, before.event);
    const ingestLatency = diffBuckets(after.ingest, before.ingest);
    const batchesAfter = await allBatchCounts(p);
    const batchSizes = Object.fromEntries(
      BATCHING.map((service, i) => {
        const [b, a] = [batchesBefore[i]!, batchesAfter[i]!];
        const batches = a.batches - b.batches;
        return [service, batches > 0 ? Math.round((a.messages - b.messages) / batches) : undefined];
      }),
    );

    const count = await countDelivery(p, record, BENCH_TENANT, {
      fromMs: windows.fromMs,
      widthMs: WINDOW_MS,
    });
    const { lostPoints, duplicatedPoints, storedMessages } = count;
    const drainMs = Math.max(0, drainedAt - (startedAt + sendingMs));
    const q = (x: number, of = latency) => {
      const v = quantile(of, x);
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
      ingestP50Ms: q(0.5, ingestLatency),
      ingestP99Ms: q(0.99, ingestLatency),
      p99ByWindowMs,
      ingestP99ByWindowMs,
      machineByWindow,
      cpuByWindowPct,
      backlogByWindow,
      bridgedPerSByWindow,
      machine,
      batchSizes,
      deviceSide: count.deviceSide,
      sustained: heldRate({ rate, sentPerS, lostPoints, drainMs, complete }),
      processes,
    };
  } finally {
    await raw.stop();
    removeDir(dir);
  }
}
