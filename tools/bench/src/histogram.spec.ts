import { diffBuckets, gcSoFar, parseHistogram, percentile, quantile, sumSamples } from './histogram';

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

describe('sumSamples', () => {
  const text = [
    '# HELP iot_messages_processed_total x',
    'iot_messages_processed_total{stage="tsdb-writer",outcome="ok",service="w"} 900',
    'iot_messages_processed_total{stage="tsdb-writer",outcome="dlq",service="w"} 7',
    'iot_messages_processed_total{stage="tsdb-writer",outcome="retry",service="w"} 40',
    'iot_messages_processed_total{stage="demux",outcome="ok",service="w"} 3',
    'iot_messages_processed_total_other{stage="tsdb-writer"} 1000',
  ].join('\n');

  it("adds a metric's samples, all or those whose labels match, and no other metric's", () => {
    expect(sumSamples(text, 'iot_messages_processed_total')).toBe(950);
    expect(
      sumSamples(
        text,
        'iot_messages_processed_total',
        (l) => l.includes('stage="tsdb-writer"') && !l.includes('"retry"'),
      ),
    ).toBe(907);
    expect(sumSamples(text, 'iot_messages_received_total')).toBe(0);
  });
});

describe('gcSoFar', () => {
  it("counts the full collections and adds the main thread's pauses of every kind", () => {
    const text = [
      '# TYPE nodejs_gc_duration_seconds histogram',
      'nodejs_gc_duration_seconds_bucket{le="0.001",kind="minor",service="w"} 40',
      'nodejs_gc_duration_seconds_sum{kind="minor",service="w"} 0.25',
      'nodejs_gc_duration_seconds_count{kind="minor",service="w"} 120',
      'nodejs_gc_duration_seconds_sum{kind="incremental",service="w"} 0.5',
      'nodejs_gc_duration_seconds_count{kind="incremental",service="w"} 300',
      'nodejs_gc_duration_seconds_sum{kind="major",service="w"} 0.125',
      'nodejs_gc_duration_seconds_count{kind="major",service="w"} 19',
    ].join('\n');
    expect(gcSoFar(text)).toEqual({ full: 19, pausedS: 0.875 });
  });

  it('reads nothing where the service exports no GC metrics', () => {
    expect(gcSoFar('iot_messages_received_total{stage="demux"} 5')).toEqual({ full: 0, pausedS: 0 });
  });
});
