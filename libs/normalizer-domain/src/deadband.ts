import type { NormalizedPoint } from '@iot/contracts';

export interface DeadbandSpec {
  /** A value within this distance of the last stored one is not stored again. */
  tolerance: number;
  /** Store at least this often even when nothing changed, so gaps stay visible (ms). */
  maxSilenceMs: number;
}

interface Last {
  value: number;
  ts: number;
  quality: string;
}

/**
 * Deadband per tenant, device and metric: drops a point whose value moved less than the
 * tolerance since the last stored one, unless its quality changed or the last stored one is
 * older than `maxSilenceMs`. Older (out-of-order) points always pass and change nothing.
 * The state is per process: with several replicas a device may be stored a little more
 * often, never less. Memory is bounded: past `maxEntries` the least recently seen go.
 */
export class DeadbandFilter {
  private readonly last = new Map<string, Last>();

  constructor(private readonly maxEntries = 1_000_000) {}

  admit(
    tenant: string,
    device: string,
    ts: number,
    point: NormalizedPoint,
    spec: DeadbandSpec | undefined,
  ): boolean {
    if (!spec || !(spec.tolerance > 0)) return true;
    const key = `${tenant}\u0000${device}\u0000${point.metric}`;
    const prev = this.last.get(key);
    if (prev && ts <= prev.ts) return true;
    const unchanged =
      prev !== undefined &&
      prev.quality === point.quality &&
      Math.abs(point.value - prev.value) <= spec.tolerance &&
      ts - prev.ts < spec.maxSilenceMs;
    if (unchanged) return false;
    this.last.delete(key); // re-inserted last: the Map's order is least recently stored first
    this.last.set(key, { value: point.value, ts, quality: point.quality });
    if (this.last.size > this.maxEntries) {
      const drop = Math.ceil(this.maxEntries / 10);
      let n = 0;
      for (const k of this.last.keys()) {
        if (n++ >= drop) break;
        this.last.delete(k);
      }
    }
    return true;
  }

  get size(): number {
    return this.last.size;
  }
}
