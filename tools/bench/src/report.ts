import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { ServerVersions } from './servers';

/** One figure of a run; fields that do not apply are left out (ARCHITECTURE.md, results JSON). */
export interface ResultEntry {
  msgs_per_s?: number;
  points_per_s?: number;
  p50_ms?: number;
  p95_ms?: number;
  p99_ms?: number;
  /** e2e: the p99 of each 5-second window of the run (ms), so one stall shows as one window. */
  p99_by_5s_ms?: Array<number | undefined>;
  /**
   * e2e: the same windows' p99 from the bridge's receipt to the commit (the platform's part),
   * and of how late the simulator sent, by the time each message was due (the device's side
   * that this machine adds): a slow window says which side it was.
   */
  ingest_p99_by_5s_ms?: Array<number | undefined>;
  send_lag_p99_by_5s_ms?: Array<number | undefined>;
  /**
   * e2e: where the machine's CPU time went in each of those windows, in percent of all its
   * cores: running anything (and of that, the kernel's own work: system calls, interrupts),
   * idle waiting on the disk, stolen by the hypervisor. A window with a high p99 and iowait
   * or steal was held up by the machine, not by the pipeline.
   */
  machine_by_5s_pct?: {
    busy: Array<number | undefined>;
    kernel: Array<number | undefined>;
    iowait: Array<number | undefined>;
    steal: Array<number | undefined>;
  };
  /**
   * e2e: each process's CPU in each of those windows, in percent of one core
   * (`{ "nats-server": [41, 43, ...] }`): which process took the machine when.
   */
  cpu_by_5s_pct_of_core?: Record<string, Array<number | undefined>>;
  /**
   * e2e: at the end of each window, the messages JetStream held for each worker consumer
   * (pending and unacknowledged), and how many the bridge put in the raw stream per second in
   * it. With the devices' rate they say where a backlog waited: in the broker (the bridge
   * taking less than was sent) or in a stream.
   */
  backlog_by_5s?: Record<string, Array<number | undefined>>;
  bridged_per_s_by_5s?: Array<number | undefined>;
  /** e2e: messages per batch, on average, at each consumer that batches. */
  batch_sizes?: Record<string, number | undefined>;
  lost?: number;
  duplicated?: number;
  cpu_us_per_msg?: number;
  /** e2e at rest: all processes together, in percent of one core. */
  cpu_pct_of_core?: number;
  /**
   * e2e: our services' CPU over the servers' (nats-server, PostgreSQL, mosquitto) in the same
   * phase; steadier than any absolute figure when the host's speed drifts, so runs of two
   * versions of the code compare on it.
   */
  services_over_servers?: number;
  rss_mib?: number;
  /** This figure over the baseline it is compared with, and which one. */
  ratio?: number;
  baseline?: string;
  /** What the issue asks of it, as text, and whether this run meets it. */
  target?: string;
  met?: boolean;
  note?: string;
  /** The same figure over a second baseline that bounds it (demux and the normalizer: js_relay; the bridge: mqtt_qos1). */
  ratio_to_relay?: number;
  ratio_to_mqtt?: number;
  /**
   * stages: the baseline `ratio` is to, measured on the same servers just before and just
   * after this stage; the ratio is to their mean. The machine's speed drifts by up to 2x
   * within minutes here, so a baseline from the start of the run misreads later stages.
   */
  baseline_around?: [number, number];
  /**
   * stages: the service's garbage collection during the stage, from its /metrics: full
   * collections (Mark-Compact), and the main thread's pauses for every kind. Concurrent
   * marking on V8's background threads is in the process's CPU, not in these pauses.
   */
  gc_full_collections?: number;
  gc_paused_ms?: number;
}

export interface BenchReport {
  scenario: string;
  started_at: string;
  machine: { cores: number; node: string; cpu: string };
  /** The servers' versions, as they said (`serverVersions`). */
  servers?: ServerVersions;
  baselines: Record<string, number>;
  results: Record<string, ResultEntry>;
  /**
   * Per process over the measured window: CPU seconds, the kernel's part of them in percent,
   * per message (or, at rest, the share of one core), and peak RSS.
   */
  processes?: Record<
    string,
    Record<
      string,
      {
        cpu_s: number;
        kernel_pct?: number;
        cpu_us_per_msg?: number;
        cpu_pct_of_core?: number;
        rss_mib: number;
      }
    >
  >;
  settings?: Record<string, unknown>;
}

export function newReport(scenario: string, settings: Record<string, unknown> = {}): BenchReport {
  return {
    scenario,
    started_at: new Date().toISOString(),
    machine: { cores: cpus().length, node: process.version, cpu: cpus()[0]?.model ?? 'unknown' },
    baselines: {},
    results: {},
    settings,
  };
}

export const round = (v: number | undefined, digits = 1): number | undefined =>
  v === undefined || !Number.isFinite(v) ? undefined : Math.round(v * 10 ** digits) / 10 ** digits;

/** Writes `bench/results/<scenario>-<time>.json` and returns its path. */
export function writeReport(root: string, report: BenchReport): string {
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${report.scenario}-${report.started_at.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  return file;
}

const COLUMNS: Array<[keyof ResultEntry, string]> = [
  ['msgs_per_s', 'msg/s'],
  ['points_per_s', 'points/s'],
  ['p50_ms', 'p50 ms'],
  ['p95_ms', 'p95 ms'],
  ['p99_ms', 'p99 ms'],
  ['lost', 'lost'],
  ['duplicated', 'dup'],
  ['cpu_us_per_msg', 'cpu µs/msg'],
  ['rss_mib', 'RSS MiB'],
  ['ratio', 'ratio'],
];

/** The report as a text table: baselines first, then results with their ratio and target. */
export function formatReport(report: BenchReport): string {
  const rows: string[][] = [['', ...COLUMNS.map(([, h]) => h), 'target']];
  for (const [name, v] of Object.entries(report.baselines))
    rows.push([`baseline ${name}`, String(Math.round(v)), ...COLUMNS.slice(1).map(() => ''), '']);
  for (const [name, r] of Object.entries(report.results))
    rows.push([
      name,
      ...COLUMNS.map(([k]) => (r[k] === undefined ? '' : String(r[k]))),
      r.target ? `${r.met ? 'met' : 'NOT met'}: ${r.target}` : '',
    ]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => (i === 0 || i === r.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  '),
  );
  const notes = Object.entries(report.results)
    .filter(([, r]) => r.note)
    .map(([n, r]) => `  ${n}: ${r.note}`);
  return [
    `${report.scenario} (${report.started_at}, ${report.machine.cores} cores, Node ${report.machine.node}${serversLine(report.servers)})`,
    ...lines,
    ...(notes.length ? ['notes:', ...notes] : []),
  ].join('\n');
}

function serversLine(v: ServerVersions | undefined): string {
  if (!v) return '';
  const named = [
    v.nats_server && `nats-server ${v.nats_server}`,
    v.postgres && `PostgreSQL ${v.postgres}${v.timescaledb ? ` with TimescaleDB ${v.timescaledb}` : ''}`,
    v.mosquitto && `mosquitto ${v.mosquitto}`,
  ].filter(Boolean);
  return named.length ? `, ${named.join(', ')}` : '';
}
