import { compareReports } from './compare';
import type { BenchReport } from './report';

const run = (started_at: string, publish: number, writer: number | undefined, p99: number): BenchReport => ({
  scenario: 'stages',
  started_at,
  machine: { cores: 2, node: 'v24', cpu: 'x' },
  baselines: { js_publish: publish },
  results: {
    'tsdb-writer': { msgs_per_s: writer, p99_ms: p99, ratio: 0.8 },
  },
  processes: { 'tsdb-writer': { postgres: { cpu_s: 1, cpu_us_per_msg: 36.3, rss_mib: 40 } } },
});

describe('compareReports', () => {
  const a = { name: 'stages 12-05T04:38', report: run('2026-12-05T04:38:30.157Z', 60_000, 20_000, 10) };
  const b = { name: 'stages 12-05T07:50', report: run('2026-12-05T07:50:18.855Z', 30_000, undefined, 15) };
  const lines = (text: string) => text.split('\n').map((l) => l.trim().split(/\s{2,}/));

  it('puts runs side by side, with the last over the first, and a dash where a run has no figure', () => {
    expect(lines(compareReports([a, b]))).toEqual([
      ['stages 12-05T04:38', 'stages 12-05T07:50', 'last/first'],
      ['baseline js_publish', '60000', '30000', '0.50'],
      ['tsdb-writer: msg/s', '20000', '-'],
      ['tsdb-writer: p99 ms', '10', '15', '1.50'],
      ['tsdb-writer: ratio', '0.8', '0.8', '1.00'],
      ['tsdb-writer: postgres cpu µs/msg', '36.3', '36.3', '1.00'],
    ]);
  });

  it('keeps the rows --only matches, and says when none does', () => {
    expect(lines(compareReports([a, b], /p99|publish/)).map((l) => l[0])).toEqual([
      'stages 12-05T04:38',
      'baseline js_publish',
      'tsdb-writer: p99 ms',
    ]);
    expect(compareReports([a, b], /nothing like this/)).toBe(
      'nothing to compare matching /nothing like this/',
    );
  });
});
