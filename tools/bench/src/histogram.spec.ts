import { diffBuckets, parseHistogram, percentile, quantile } from './histogram';

const scrape = (counts: number[]) =>
  [
    '# HELP iot_event_to_commit_seconds x',
    '# TYPE iot_event_to_commit_seconds histogram',
    ...[0.05, 0.1, 0.25, '+Inf'].map(
      (le, i) => `iot_event_to_commit_seconds_bucket{le="${le}",service="tsdb-writer"} ${counts[i]}`,
    ),
    `iot_event_to_commit_seconds_count{service="tsdb-writer"} ${counts[3]}`,
  ].join('\n');

describe('latency from a Prometheus histogram', () => {
  it('reads the cumulative buckets and takes what happened between two scrapes', () => {
    const before = parseHistogram(scrape([10, 10, 10, 10]), 'iot_event_to_commit_seconds');
    const after = parseHistogram(scrape([60, 110, 110, 110]), 'iot_event_to_commit_seconds');
    const run = diffBuckets(after, before);
    expect([...run.entries()]).toEqual([
      [0.05, 50],
      [0.1, 100],
      [0.25, 100],
      [Infinity, 100],
    ]);
    // Half the observations are under 50 ms, all under 100 ms.
    expect(quantile(run, 0.5)).toBeCloseTo(0.05);
    expect(quantile(run, 0.75)).toBeCloseTo(0.075);
    expect(quantile(run, 0.99)).toBeCloseTo(0.099);
  });

  it('has no quantile without observations, and answers the last bound past it', () => {
    expect(quantile(new Map([[Infinity, 0]]), 0.5)).toBeUndefined();
    expect(
      quantile(
        new Map([
          [1, 0],
          [Infinity, 5],
        ]),
        0.99,
      ),
    ).toBe(1);
  });

  it('takes exact percentiles by nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(xs, 0.5), percentile(xs, 0.99), percentile(xs, 1)]).toEqual([50, 99, 100]);
    expect(percentile([], 0.5)).toBeUndefined();
  });
});
