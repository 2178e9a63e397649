import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { BenchReport, ResultEntry } from './report';

/** The figures of a result that are compared across runs, in this order. */
const FIGURES: Array<[keyof ResultEntry, string]> = [
  ['msgs_per_s', 'msg/s'],
  ['points_per_s', 'points/s'],
  ['p50_ms', 'p50 ms'],
  ['p99_ms', 'p99 ms'],
  ['cpu_us_per_msg', 'cpu µs/msg'],
  ['cpu_pct_of_core', '% of a core'],
  ['services_over_servers', 'services/servers'],
  ['ratio', 'ratio'],
  ['lost', 'lost'],
  ['duplicated', 'dup'],
  ['rss_mib', 'RSS MiB'],
];

/**
 * A results file named on the command line: a path, or a name under bench/results. Throws
 * an error that names the file and says what is wrong with it.
 */
export function readReport(root: string, arg: string): { name: string; report: BenchReport } {
  const candidates = isAbsolute(arg)
    ? [arg]
    : [resolve(arg), join(root, 'bench', 'results', arg), join(root, 'bench', 'results', `${arg}.json`)];
  const file = candidates.find((f) => existsSync(f));
  if (!file) throw new Error(`no results file '${arg}' (looked in . and bench/results)`);
  let report: BenchReport;
  try {
    report = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
  } catch (e) {
    throw new Error(`${file} is not JSON (${(e as Error).message}): give a file ./platform bench wrote`);
  }
  if (typeof report?.scenario !== 'string' || typeof report.results !== 'object' || !report.results)
    throw new Error(`${file} is not a results file of ./platform bench (no scenario and results)`);
  return { name: `${report.scenario} ${String(report.started_at ?? '').slice(5, 16)}`, report };
}

type Row = { label: string; values: Array<number | undefined> };

/**
 * Runs side by side: each baseline, each result's figures, and each process's cost per
 * message in each phase, one column per run, then the last run's figure over the first's.
 * The host's speed moves absolute figures between runs; the baselines' row says by how
 * much, and `services/servers` is the figure that moves least with it (docs/performance.md).
 * `only` keeps the rows whose label it matches.
 */
export function compareReports(runs: Array<{ name: string; report: BenchReport }>, only?: RegExp): string {
  const rows: Row[] = [];
  const union = <T>(lists: T[][]): T[] => [...new Set(lists.flat())];
  const add = (label: string, pick: (r: BenchReport) => number | undefined) => {
    const values = runs.map(({ report }) => {
      const v = pick(report);
      return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
    });
    if (values.some((v) => v !== undefined) && (!only || only.test(label))) rows.push({ label, values });
  };
  for (const k of union(runs.map(({ report }) => Object.keys(report.baselines ?? {}))))
    add(`baseline ${k}`, (r) => r.baselines?.[k]);
  for (const name of union(runs.map(({ report }) => Object.keys(report.results))))
    for (const [key, label] of FIGURES) add(`${name}: ${label}`, (r) => r.results[name]?.[key] as number);
  for (const phase of union(runs.map(({ report }) => Object.keys(report.processes ?? {}))))
    for (const proc of union(runs.map(({ report }) => Object.keys(report.processes?.[phase] ?? {})))) {
      add(`${phase}: ${proc} cpu µs/msg`, (r) => r.processes?.[phase]?.[proc]?.cpu_us_per_msg);
      add(`${phase}: ${proc} % of a core`, (r) => r.processes?.[phase]?.[proc]?.cpu_pct_of_core);
    }
  if (rows.length === 0) return `nothing to compare${only ? ` matching /${only.source}/` : ''}`;
  const table = [
    ['', ...runs.map((r) => r.name), 'last/first'],
    ...rows.map(({ label, values }) => {
      const first = values[0];
      const last = values[values.length - 1];
      const change =
        first !== undefined && last !== undefined && first !== 0 ? (last / first).toFixed(2) : '';
      return [label, ...values.map((v) => (v === undefined ? '-' : String(v))), change];
    }),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  return table
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '))
    .join('\n');
}
