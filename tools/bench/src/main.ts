/**
 * `./platform bench [baselines|stages|writes|e2e|query|all] [--quick] [--messages N] [--rate R]
 * [--duration S] [--rows N] [--steps R,R,...] [--normalize-in-demux]`: starts its own servers
 * (as the tests do), runs the scenario, prints a table and writes
 * bench/results/<scenario>-<time>.json. It reports; it never fails on a time.
 * `./platform bench compare FILE FILE... [--only REGEX]` prints runs side by side.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  measureBaselines,
  measureJsBaselines,
  pgCopyBaseline,
  type Baselines,
  type JsBaselines,
} from './baselines';
import { measureIdle, runE2e, startE2ePipeline, type E2eRun } from './e2e';
import { benchDevices, METRICS_PER_MESSAGE } from './load';
import { runQueries } from './query';
import { compareReports, readReport } from './compare';
import { formatReport, newReport, round, writeReport, type BenchReport, type ResultEntry } from './report';
import { serverVersions, startServers, useLocalServers } from './servers';
import {
  bridgeDrainStage,
  bridgeFloodStage,
  purgeRawStream,
  stageContext,
  workerStage,
  type StageResult,
} from './stages';
import { measureWriteForms } from './writes';
import { nextFullRun, nextStep, type SearchRun } from './search';
import { ProcessMeter, seriesByName, servicesOverServers, type ProcessUsage } from './proc';
import { removeDir, sharedMachineGoMaxProcs, stopEverythingOnSignals } from '@iot/testing';

const ROOT = resolve(__dirname, '..', '..', '..', '..');
const SCENARIOS = ['baselines', 'stages', 'writes', 'e2e', 'query'] as const;
type Scenario = (typeof SCENARIOS)[number];

const USAGE =
  'usage: ./platform bench [baselines|stages|writes|e2e|query|all] [--quick] [--messages N] [--rate R]\n' +
  '       [--duration S] [--rows N] [--steps R,R,...] [--normalize-in-demux]\n' +
  '       ./platform bench compare FILE FILE... [--only REGEX]   (results JSON, side by side)\n';

/** Stops before any server starts: what was wrong with the command line, and the usage. */
function refuse(problem: string): never {
  process.stderr.write(`bench: ${problem}\n${USAGE}`);
  process.exit(2);
}

function options() {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        quick: { type: 'boolean', default: false },
        messages: { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        rows: { type: 'string' },
        steps: { type: 'string' },
        'normalize-in-demux': { type: 'boolean', default: false },
        only: { type: 'string' },
      },
    });
  } catch (e) {
    return refuse((e as Error).message);
  }
}
const { values, positionals } = options();

/** A whole number above 0 given as `--name`, or the default. */
function wholeNumber(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  return Number.isInteger(n) && n > 0 ? n : refuse(`--${name} takes a whole number above 0, not '${text}'`);
}

function rates(text: string): number[] {
  const list = text.split(',').map((r) => Number(r.trim()));
  return list.every((n) => Number.isInteger(n) && n > 0)
    ? list
    : refuse(
        `--steps takes rates in messages per second separated by commas (8000,9000,10000), not '${text}'`,
      );
}

const quick = values.quick!;
const settings = {
  messages: wholeNumber('messages', values.messages, quick ? 20_000 : 100_000),
  rate: wholeNumber('rate', values.rate, 5_000),
  durationS: wholeNumber('duration', values.duration, quick ? 15 : 60),
  rows: wholeNumber('rows', values.rows, quick ? 1_000_000 : 10_000_000),
  /** Rates of the search for the highest sustained rate, each run for a third of the duration. */
  steps: rates(values.steps ?? (quick ? '2000,4000' : '2000,4000,6000,8000,10000,12000,15000')),
  /** e2e: demux normalizes, one JetStream hop less (docs/adr/0006). */
  normalizeInDemux: values['normalize-in-demux']!,
  /** e2e: the pipeline's nats-server GOMAXPROCS (null: Go's default, every core). */
  natsGoMaxProcs: sharedMachineGoMaxProcs() ?? null,
};

/** e2e: seconds at the fixed rate before anything is measured (services just started). */
const WARMUP_S = 10;
/** e2e: seconds with nothing arriving, after the warm-up (what the platform costs at rest). */
const IDLE_S = 20;

const say = (msg: string) => process.stderr.write(`--> ${msg}\n`);

function addBaselines(report: BenchReport, b: Baselines): void {
  for (const [k, v] of Object.entries(b)) report.baselines[k] = round(v, 0)!;
}

/** What every process row holds: CPU seconds, the kernel's part of them, the largest RSS. */
function usageRow(u: ProcessUsage) {
  return {
    cpu_s: round(u.cpuMs / 1000, 2)!,
    // The kernel's part: system calls and socket work cost more on some hosts than others.
    kernel_pct: u.cpuMs > 0 ? round((100 * u.kernelMs) / u.cpuMs, 0) : undefined,
    rss_mib: u.maxRssMiB,
  };
}

function processTable(usage: Record<string, ProcessUsage>, messages: number) {
  return Object.fromEntries(
    Object.entries(usage).map(([name, u]) => [
      name,
      { ...usageRow(u), cpu_us_per_msg: round((u.cpuMs * 1000) / messages, 1) },
    ]),
  );
}

/** CPU milliseconds over `seconds` as a share of one core, in percent. */
const pctOfCore = (cpuMs: number, seconds: number): number => cpuMs / 10 / seconds;

/** Per process at rest: as processTable, with the share of one core instead of a per-message cost. */
function idleTable(usage: Record<string, ProcessUsage>, seconds: number) {
  return Object.fromEntries(
    Object.entries(usage).map(([name, u]) => [
      name,
      { ...usageRow(u), cpu_pct_of_core: round(pctOfCore(u.cpuMs, seconds), 2) },
    ]),
  );
}

async function baselinesScenario(): Promise<BenchReport> {
  const report = newReport('baselines', settings);
  const s = await startServers(benchDevices(100));
  try {
    report.servers = await serverVersions(s);
    say(`raw baselines with ${settings.messages} messages`);
    addBaselines(report, await measureBaselines(s, settings.messages));
    report.baselines.pg_copy_msgs = round(report.baselines.pg_copy_rows! / 5, 0)!;
  } finally {
    await s.stop();
  }
  return report;
}

async function stagesScenario(): Promise<BenchReport> {
  const report = newReport('stages', settings);
  const n = settings.messages;
  const s = await startServers(benchDevices(100));
  const ctx = stageContext(ROOT, s);
  try {
    report.servers = await serverVersions(s);
    say(`raw baselines with ${n} messages`);
    const b = await measureBaselines(s, n);
    addBaselines(report, b);
    // Each stage is read against its baselines measured on the same servers just before and
    // just after it (their mean): the machine's speed drifts by up to 2x within minutes here,
    // and the baselines of the run's start misread a stage that ran in another spell.
    const mean = (around: [number, number]) => (around[0] + around[1]) / 2;
    const entry = (
      r: StageResult,
      messages: number,
      baseline: keyof Baselines,
      around: [number, number],
      factor: number,
      perRow = 1,
    ): ResultEntry => {
      const ratio = (r.msgsPerS * perRow) / mean(around);
      return {
        msgs_per_s: round(r.msgsPerS, 0),
        cpu_us_per_msg: round(r.cpuUsPerMsg, 1),
        rss_mib: r.rssMiB,
        ratio: round(ratio, 2),
        baseline,
        baseline_around: [round(around[0], 0)!, round(around[1], 0)!],
        target: `>= ${factor} x ${baseline}`,
        met: ratio >= factor,
        gc_full_collections: r.gc?.full,
        gc_paused_ms: round(r.gc?.pausedMs, 0),
        note:
          `${messages} messages; ${baseline} ${round(around[0], 0)} just before and ${round(around[1], 0)} just after, ` +
          `the ratio is to their mean (${round((r.msgsPerS * perRow) / b[baseline], 2)} to the run's first)` +
          `${r.gc ? `; during the run ${r.gc.full} full garbage collections, the main thread paused ${round(r.gc.pausedMs, 0)} ms for GC` : ''}` +
          `${r.memory ? `; after the run: ${r.memory}` : ''}`,
      };
    };
    // A second ratio, to a baseline that bounds the stage as well as the one its target names.
    const alsoTo = (
      e: ResultEntry,
      r: StageResult,
      key: 'ratio_to_relay' | 'ratio_to_mqtt',
      name: string,
      of: number,
      what: string,
    ): ResultEntry => {
      const ratio = round(r.msgsPerS / of, 2);
      return { ...e, [key]: ratio, note: `${e.note}; ${ratio} x ${name} (${what})` };
    };
    const jsAgain = async (after: string) => {
      say(`JetStream baselines again, after ${after}`);
      return measureJsBaselines(s, n);
    };
    // demux and the normalizer consume, republish and ack: against the servers doing just that.
    const relayed = (r: StageResult & { messages: number }, before: JsBaselines, after: JsBaselines) =>
      alsoTo(
        entry(r, r.messages, 'js_consume_ack', [before.js_consume_ack, after.js_consume_ack], 0.5),
        r,
        'ratio_to_relay',
        'js_relay',
        mean([before.js_relay, after.js_relay]),
        'consume, republish, ack with no work between; the mean of just before and after',
      );
    report.processes = {};
    say(`mqtt-bridge with the devices sending: ${n} messages from 50 devices at QoS 1`);
    const flooded = await bridgeFloodStage(ctx, n);
    const js0 = await jsAgain('the bridge with the devices sending');
    // The bridge takes what the broker delivers: mosquitto alone bounds it too.
    const toMqtt = (e: ResultEntry, r: StageResult) =>
      alsoTo(
        e,
        r,
        'ratio_to_mqtt',
        'mqtt_qos1',
        b.mqtt_qos1,
        "mosquitto alone delivering to one subscriber, the run's first",
      );
    const floodEntry = entry(flooded, n, 'js_publish', [b.js_publish, js0.js_publish], 0.5);
    report.results['mqtt-bridge-flooded'] = toMqtt(
      {
        ...floodEntry,
        // Reported beside the target's figure, not held to it: the devices' load generator
        // and mosquitto's intake run on the same two cores (docs/performance.md).
        target: undefined,
        met: undefined,
        note: `with the devices sending on the same cores; ${floodEntry.note}`,
      },
      flooded,
    );
    report.processes['mqtt-bridge-flooded'] = processTable(flooded.processes, n);
    await purgeRawStream(s);
    say(`mqtt-bridge alone: draining ${n} messages the devices left in its sessions`);
    const bridge = await bridgeDrainStage(ctx, n);
    const js1 = await jsAgain('the bridge');
    const drainEntry = entry(bridge, n, 'js_publish', [js0.js_publish, js1.js_publish], 0.5);
    report.results['mqtt-bridge'] = toMqtt(
      { ...drainEntry, note: `from the broker's sessions, the devices done before; ${drainEntry.note}` },
      bridge,
    );
    report.processes['mqtt-bridge'] = processTable(bridge.processes, n);
    say('demux alone on the raw stream the bridge filled');
    const demux = await workerStage(ctx, 'demux', 'TELEMETRY_RAW_V1');
    const js2 = await jsAgain('demux');
    report.results.demux = relayed(demux, js1, js2);
    report.processes.demux = processTable(demux.processes, demux.messages);
    say('normalizer alone on what demux decoded');
    const norm = await workerStage(ctx, 'normalizer', 'TELEMETRY_DECODED_V1');
    const js3 = await jsAgain('the normalizer');
    report.results.normalizer = relayed(norm, js2, js3);
    report.processes.normalizer = processTable(norm.processes, norm.messages);
    say('psql \\copy again, then tsdb-writer alone on what the normalizer published');
    const copyBefore = await pgCopyBaseline(s, n);
    const writer = await workerStage(ctx, 'tsdb-writer', 'TELEMETRY_NORMALIZED_V1', {
      DATABASE_URL: s.pg.url,
    });
    say('psql \\copy again, after the writer');
    const copyAfter = await pgCopyBaseline(s, n);
    const w = entry(writer, writer.messages, 'pg_copy_rows', [copyBefore, copyAfter], 0.8, 5);
    report.results['tsdb-writer'] = {
      ...w,
      points_per_s: round(writer.msgsPerS * 5, 0),
      note: `rows/s over psql \\copy rows/s; ${w.note}`,
    };
    report.processes['tsdb-writer'] = processTable(writer.processes, writer.messages);
  } finally {
    await s.stop();
    if (process.env.BENCH_KEEP_LOGS) say(`service logs kept in ${ctx.logs}`);
    else removeDir(ctx.logs);
  }
  return report;
}

async function writesScenario(): Promise<BenchReport> {
  const report = newReport('writes', settings);
  const n = settings.messages;
  const rows = n * METRICS_PER_MESSAGE;
  const s = await startServers([]);
  try {
    report.servers = await serverVersions(s);
    say(`psql \\copy of ${rows} rows, then the writer's statement forms on ${rows} rows each`);
    const meter = new ProcessMeter({ postgres: { pid: s.pg.process.pid, tree: true } }).begin();
    const copy = await pgCopyBaseline(s, n);
    const copyPg = meter.end().postgres!;
    report.baselines.pg_copy_rows = round(copy, 0)!;
    report.processes = { pg_copy: processTable({ postgres: copyPg }, n) };
    const forms = await measureWriteForms(s, n);
    const describe = {
      fresh: 'COPY (+ computing its buckets of the rollup on PostgreSQL): the common case',
      idempotent: 'INSERT ON CONFLICT DO NOTHING on new rows: the form after a unique_violation',
      redelivered: 'INSERT ON CONFLICT DO NOTHING on rows all stored: a redelivery',
    };
    for (const [form, r] of Object.entries(forms) as Array<
      [keyof typeof describe, (typeof forms)['fresh']]
    >) {
      const perRow = (u: ProcessUsage | undefined) => round(((u?.cpuMs ?? 0) * 1000) / rows, 2);
      report.results[form] = {
        msgs_per_s: round(r.rowsPerS / METRICS_PER_MESSAGE, 0),
        points_per_s: round(r.rowsPerS, 0),
        cpu_us_per_msg: round(((r.processes.postgres?.cpuMs ?? 0) * 1000) / n, 1),
        ratio: round(r.rowsPerS / copy, 2),
        baseline: 'pg_copy_rows',
        note: `${describe[form]}; PostgreSQL ${perRow(r.processes.postgres)} µs/row (\\copy ${perRow(copyPg)}), this process ${perRow(r.processes.bench)} µs/row; cpu µs/msg is PostgreSQL's`,
      };
      report.processes[form] = processTable(r.processes, n);
    }
  } finally {
    await s.stop();
  }
  return report;
}

/** The p99 of each 5 s window of a run, and where the machine's time went in it. */
function sayWindows(what: string, r: E2eRun): void {
  const row = (values: Array<number | undefined>) => values.map((v) => v ?? '-').join(' ');
  say(`p99 of each 5 s window${what ? ` ${what}` : ''} (ms): ${row(r.p99ByWindowMs)}`);
  say(`  of it, from the bridge's receipt: ${row(r.ingestP99ByWindowMs)}`);
  const lag = r.deviceSide?.sendLagP99ByWindowMs;
  if (lag) say(`  the simulator's lag in sending, by the time due: ${row(lag)}`);
  say(
    `  machine busy (of it kernel) / disk wait / stolen (%): ${r.machineByWindow.map((m) => (m ? `${Math.round(m.busy)} (${Math.round(m.kernel)})/${Math.round(m.iowait)}/${Math.round(m.steal)}` : '-')).join(' ')}`,
  );
  say(
    `  taken by the bridge per second: ${row(r.bridgedPerSByWindow)}; held in JetStream at the end (demux / writer): ` +
      r.backlogByWindow.map((b) => `${b?.['demux'] ?? '-'}/${b?.['tsdb-writer'] ?? '-'}`).join(' '),
  );
  const d = r.deviceSide;
  say(
    `  bridge to commit p50 ${round(r.ingestP50Ms, 0)} / p99 ${round(r.ingestP99Ms, 0)} ms` +
      (d
        ? `; simulator's publish calls late by p50 ${d.sendLagMs.p50} / p99 ${d.sendLagMs.p99} ms; PUBACK after p50 ${d.pubackMs.p50} / p99 ${d.pubackMs.p99} ms`
        : ''),
  );
}

const SERVICES = ['mqtt-bridge', 'demux', 'normalizer', 'tsdb-writer'];

/** The largest peak RSS of our services over a window (MiB): the issue's 256 MiB is per service. */
const largestServiceRss = (processes: Record<string, ProcessUsage>): number =>
  Math.max(...SERVICES.map((s) => processes[s]?.maxRssMiB ?? 0));

/**
 * A run kept up when it held its rate (search.ts `heldRate`: sent, nothing lost, the backlog
 * gone within 1 s of the last send, as for the steps), 99% of the rate was sent, every reading
 * was stored once and the services stayed under 256 MiB: over the full duration the pipeline
 * fell behind by less than a second's worth.
 */
function keptUp(r: E2eRun): boolean {
  return (
    r.sustained &&
    r.sentPerS >= 0.99 * r.targetRate &&
    r.duplicatedPoints === 0 &&
    largestServiceRss(r.processes) < 256
  );
}

function e2eEntry(r: E2eRun, target: string, met: boolean) {
  const cpuMs = Object.entries(r.processes).reduce((t, [, u]) => t + u.cpuMs, 0);
  return {
    msgs_per_s: round(r.msgsPerS, 0),
    points_per_s: round(r.msgsPerS * 5, 0),
    p50_ms: round(r.p50Ms, 0),
    p95_ms: round(r.p95Ms, 0),
    p99_ms: round(r.p99Ms, 0),
    p99_by_5s_ms: r.p99ByWindowMs,
    ingest_p99_by_5s_ms: r.ingestP99ByWindowMs,
    send_lag_p99_by_5s_ms: r.deviceSide?.sendLagP99ByWindowMs,
    machine_by_5s_pct: {
      busy: r.machineByWindow.map((m) => m?.busy),
      kernel: r.machineByWindow.map((m) => m?.kernel),
      iowait: r.machineByWindow.map((m) => m?.iowait),
      steal: r.machineByWindow.map((m) => m?.steal),
    },
    cpu_by_5s_pct_of_core: seriesByName(r.cpuByWindowPct),
    backlog_by_5s: seriesByName(r.backlogByWindow),
    bridged_per_s_by_5s: r.bridgedPerSByWindow,
    batch_sizes: r.batchSizes,
    // From the bridge's receipt to the commit: the pipeline's part of the latency above; how
    // late the co-located simulator called publish (counted in the latency above) and how long
    // a device waited for the broker's PUBACK (on this machine it includes the simulator's
    // own queueing).
    ingest_to_commit_ms: { p50: round(r.ingestP50Ms, 0), p99: round(r.ingestP99Ms, 0) },
    send_lag_ms: r.deviceSide?.sendLagMs,
    puback_ms: r.deviceSide?.pubackMs,
    lost: r.lostPoints,
    duplicated: r.duplicatedPoints,
    cpu_us_per_msg: round((cpuMs * 1000) / Math.max(1, r.storedMessages), 0),
    services_over_servers: round(servicesOverServers(r.processes, SERVICES), 3),
    rss_mib: largestServiceRss(r.processes),
    target,
    met,
    note:
      `target ${r.targetRate} msg/s, sent ${round(r.sentPerS, 0)} msg/s (${r.sent} sent, ${r.acked} acked, ` +
      `${r.storedMessages} stored), drained ${(r.drainMs / 1000).toFixed(1)} s after the last send; ` +
      `cpu µs/msg is all processes together; RSS is the largest service` +
      (r.machine
        ? `; the machine ${r.machine.busy}% busy (${r.machine.kernel}% in the kernel), ${r.machine.iowait}% waiting on the disk, ${r.machine.steal}% stolen`
        : '') +
      `; from the bridge's receipt to the commit p50 ${round(r.ingestP50Ms, 0)} / p99 ${round(r.ingestP99Ms, 0)} ms` +
      (r.deviceSide
        ? `; the simulator called publish p50 ${r.deviceSide.sendLagMs.p50} / p99 ${r.deviceSide.sendLagMs.p99} ms after the time a message carries (its own lag, in the latency), PUBACK p50 ${r.deviceSide.pubackMs.p50} / p99 ${r.deviceSide.pubackMs.p99} ms`
        : ''),
  };
}

async function e2eScenario(): Promise<BenchReport> {
  const report = newReport('e2e', settings);
  {
    const s = await startServers(benchDevices(100));
    try {
      report.servers = await serverVersions(s);
      say('raw baselines (50,000 messages) on their own servers');
      addBaselines(report, await measureBaselines(s, 50_000));
    } finally {
      await s.stop();
    }
  }
  say(
    `starting the pipeline (nats-server with GOMAXPROCS ${settings.natsGoMaxProcs ?? "Go's default"}, PostgreSQL with fsync, mosquitto, four services${settings.normalizeInDemux ? '; demux normalizes, NORMALIZE_IN_DEMUX' : ''})`,
  );
  const p = await startE2ePipeline(ROOT, settings.normalizeInDemux, settings.natsGoMaxProcs ?? undefined);
  report.processes = {};
  try {
    // The first seconds after a start are slower: V8 compiles the hot paths, pools and
    // connections fill. They are measured on their own (the cold start a deployment sees)
    // and kept out of the steady-state figures, as a benchmark harness does.
    say(`warm-up: ${settings.rate} msg/s for ${WARMUP_S} s, measured on its own (the cold start)`);
    const warm = await runE2e(ROOT, p, settings.rate, WARMUP_S);
    const { target: _t, met: _m, ...warmEntry } = e2eEntry(warm, '', true);
    report.results[`e2e warm-up @${settings.rate}/s`] = {
      ...warmEntry,
      note: `the first ${WARMUP_S} s after the services started, not a target; ${warmEntry.note}`,
    };
    sayWindows('of the warm-up', warm);
    say(`at rest: nothing sent for ${IDLE_S} s`);
    const usage = await measureIdle(p, IDLE_S);
    const idle = idleTable(usage, IDLE_S);
    const idleTotal = pctOfCore(
      Object.values(usage).reduce((t, u) => t + u.cpuMs, 0),
      IDLE_S,
    );
    report.results['e2e at rest'] = {
      cpu_pct_of_core: round(idleTotal, 1),
      rss_mib: largestServiceRss(usage),
      note:
        `nothing sent for ${IDLE_S} s after the warm-up: all processes together ${round(idleTotal, 1)}% of one core (` +
        Object.entries(idle)
          .map(([name, u]) => `${name} ${u.cpu_pct_of_core}`)
          .join(', ') +
        '); RSS is the largest service',
    };
    report.processes['e2e at rest'] = idle;
    say(
      `end to end at ${settings.rate} msg/s for ${settings.durationS} s (200 devices, canonical, 5 sensors)`,
    );
    const fixed = await runE2e(ROOT, p, settings.rate, settings.durationS);
    sayWindows('', fixed);
    say(`messages per batch: ${JSON.stringify(fixed.batchSizes)}`);
    const p99ok = fixed.p99Ms !== undefined && fixed.p99Ms <= 250;
    report.results[`e2e @${settings.rate}/s`] = e2eEntry(
      fixed,
      'p99 device-to-commit <= 250 ms at 5,000 msg/s, 0 lost, 0 dup',
      p99ok && fixed.lostPoints === 0 && fixed.duplicatedPoints === 0,
    );
    report.processes[`e2e @${settings.rate}/s`] = processTable(fixed.processes, fixed.storedMessages);
    const runs: E2eRun[] = [];
    const searched = (r: E2eRun, ok: boolean): SearchRun => ({
      rate: r.targetRate,
      ok,
      storedPerS: r.msgsPerS,
    });
    const stepS = Math.max(10, Math.round(settings.durationS / 3));
    // Short steps find the edge (search.ts `nextStep`: up the steps, then halving the gap to
    // the first missed, or below the lowest when it is missed).
    for (let rate = nextStep(settings.steps, []); rate !== undefined;) {
      say(`searching the highest sustained rate: ${rate} msg/s for ${stepS} s`);
      const r = await runE2e(ROOT, p, rate, stepS);
      runs.push(r);
      sayWindows('', r);
      report.results[`e2e step ${rate}/s`] = {
        ...e2eEntry(r, 'sustained: sent at rate, drained within 1 s, 0 lost', r.sustained),
      };
      rate = nextStep(
        settings.steps,
        runs.map((x) => searched(x, x.sustained)),
      );
    }
    // The steps find the edge in a third of the duration each; the issue asks for the highest
    // rate sustained for the whole duration. So the highest step held runs again for the full
    // --duration and must keep up (`keptUp`); if it does not, the next try is lower, guided by
    // what it stored, and once one keeps up, once midway (search.ts `nextFullRun`). "e2e max
    // sustained" is the highest run that kept up, or the last that did not.
    const held = runs.filter((r) => r.sustained).map((r) => r.targetRate);
    const fullRuns: E2eRun[] = [];
    let confirmed: E2eRun | undefined;
    for (let rate = nextFullRun(held, []); rate !== undefined;) {
      say(`the whole duration at ${rate} msg/s (${settings.durationS} s)`);
      const r = await runE2e(ROOT, p, rate, settings.durationS);
      fullRuns.push(r);
      sayWindows('', r);
      const ok = keptUp(r);
      const name = `e2e ${settings.durationS} s at ${rate}/s`;
      report.results[name] = e2eEntry(
        r,
        `kept up for ${settings.durationS} s: sent at rate, 0 lost, 0 dup, backlog gone within 1 s`,
        ok,
      );
      report.processes[name] = processTable(r.processes, r.storedMessages);
      if (ok && (!confirmed || r.targetRate > confirmed.targetRate)) confirmed = r;
      rate = nextFullRun(
        held,
        fullRuns.map((x) => searched(x, keptUp(x))),
      );
    }
    const last = fullRuns[fullRuns.length - 1];
    const shown = confirmed ?? last;
    if (shown) {
      const entry = e2eEntry(
        shown,
        `>= 10,000 msg/s (50,000 points/s) for ${settings.durationS} s, kept up (backlog gone within 1 s), 0 lost, 0 dup; services < 256 MiB`,
        confirmed !== undefined && confirmed.targetRate >= 10_000,
      );
      const missed = fullRuns.filter((r) => !keptUp(r)).map((r) => r.targetRate);
      entry.note +=
        (confirmed ? `; kept up for ${settings.durationS} s at ${confirmed.targetRate} msg/s` : '') +
        (missed.length > 0
          ? `; did not keep up for ${settings.durationS} s at ${missed.join(', ')} msg/s`
          : '');
      report.results['e2e max sustained'] = entry;
      report.processes['e2e max sustained'] = processTable(shown.processes, shown.storedMessages);
    }
  } finally {
    await p.stop();
  }
  return report;
}

async function queryScenario(): Promise<BenchReport> {
  const report = newReport('query', settings);
  const s = await startServers([]);
  try {
    report.servers = await serverVersions(s);
    say(`filling ${settings.rows} rows (100 devices x 5 metrics over 30 days) and the 5-minute rollup`);
    const q = await runQueries(s, settings.rows);
    report.results['history 24 h of one device'] = {
      p50_ms: round(q.history.p50Ms, 2),
      p99_ms: round(q.history.p99Ms, 2),
      target: 'p99 < 100 ms',
      met: q.history.p99Ms < 100,
      note: `${q.rows} rows in the table; ${q.history.rowsPerQuery} rows per answer`,
    };
    report.results['5-min aggregates 30 d of one metric'] = {
      p50_ms: round(q.aggregates.p50Ms, 2),
      p99_ms: round(q.aggregates.p99Ms, 2),
      note: `${q.aggregates.rowsPerQuery} buckets per answer; fill took ${(q.fillMs / 1000).toFixed(0)} s`,
    };
  } finally {
    await s.stop();
  }
  return report;
}

const RUN: Record<Scenario, () => Promise<BenchReport>> = {
  baselines: baselinesScenario,
  stages: stagesScenario,
  writes: writesScenario,
  e2e: e2eScenario,
  query: queryScenario,
};

/** `compare FILE FILE...`: runs side by side, nothing started. */
function compare(files: string[]): number {
  if (files.length < 2) refuse('compare takes two or more results files (bench/results/*.json)');
  let only: RegExp | undefined;
  try {
    only = values.only === undefined ? undefined : new RegExp(values.only);
  } catch (e) {
    refuse(`--only takes a regular expression: ${(e as Error).message}`);
  }
  let runs: Array<ReturnType<typeof readReport>>;
  try {
    runs = files.map((f) => readReport(ROOT, f));
  } catch (e) {
    return refuse((e as Error).message);
  }
  process.stdout.write(`${compareReports(runs, only)}\n`);
  return 0;
}

async function main(): Promise<number> {
  const wanted = positionals[0] ?? 'all';
  if (wanted === 'compare') return compare(positionals.slice(1));
  const scenarios: readonly Scenario[] =
    wanted === 'all' ? SCENARIOS : SCENARIOS.includes(wanted as Scenario) ? [wanted as Scenario] : [];
  if (scenarios.length === 0) {
    refuse(`unknown scenario '${wanted}': use one of ${SCENARIOS.join(', ')} or all (or compare)`);
  }
  for (const scenario of scenarios) {
    const report = await RUN[scenario]();
    const file = writeReport(ROOT, report);
    process.stdout.write(`\n${formatReport(report)}\nwritten to ${file}\n`);
  }
  return 0;
}

// Stopped by a signal (Ctrl-C, kill, a CI timeout): no server of this run is left behind.
stopEverythingOnSignals();
useLocalServers();
main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
