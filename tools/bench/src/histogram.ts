/** Cumulative bucket counts of one Prometheus histogram: upper bound (le) to count. */
export type Buckets = Map<number, number>;

/** Reads `<name>_bucket{...le="x"} n` lines from a /metrics text (one series, no other labels). */
export function parseHistogram(text: string, name: string): Buckets {
  const out: Buckets = new Map();
  const re = new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\}\\s+(\\S+)`, 'gm');
  for (const m of text.matchAll(re)) {
    const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
    out.set(le, (out.get(le) ?? 0) + Number(m[2]));
  }
  return out;
}

/**
 * The sum of a metric's samples in a /metrics text, over those whose labels (the text between
 * the braces) `where` accepts; every sample when it is not given.
 */
export function sumSamples(text: string, name: string, where?: (labels: string) => boolean): number {
  let sum = 0;
  for (const [, labels, value] of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\}\\s+(\\S+)`, 'gm')))
    if (!where || where(labels!)) sum += Number(value);
  return sum;
}

/** Garbage collection so far, from prom-client's `nodejs_gc_duration_seconds` in a /metrics text. */
export interface GcSoFar {
  /** Full collections (Mark-Compact: `kind="major"`). */
  full: number;
  /** Seconds the main thread paused for collections of every kind. */
  pausedS: number;
}

export function gcSoFar(text: string): GcSoFar {
  return {
    full: sumSamples(text, 'nodejs_gc_duration_seconds_count', (labels) => labels.includes('kind="major"')),
    pausedS: sumSamples(text, 'nodejs_gc_duration_seconds_sum'),
  };
}

/** What was observed between two scrapes. */
export function diffBuckets(after: Buckets, before: Buckets): Buckets {
  const out: Buckets = new Map();
  for (const [le, n] of after) out.set(le, n - (before.get(le) ?? 0));
  return out;
}

/**
 * The q-quantile, interpolated linearly within its bucket as Prometheus'
 * histogram_quantile does; undefined without observations. Beyond the last finite bucket it
 * answers that bucket's bound (the true value is larger: the report says so with ">").
 */
export function quantile(buckets: Buckets, q: number): number | undefined {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? buckets.get(bounds[bounds.length - 1]!) ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const le of bounds) {
    const count = buckets.get(le)!;
    if (count >= rank) {
      if (le === Infinity) return prevBound;
      if (count === prevCount) return le;
      return prevBound + ((le - prevBound) * (rank - prevCount)) / (count - prevCount);
    }
    prevBound = le;
    prevCount = count;
  }
  return prevBound;
}

/** Exact percentiles of a sample (nearest rank). */
export function percentile(sorted: number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
