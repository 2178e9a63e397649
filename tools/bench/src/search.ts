/**
 * The e2e scenario's search for the highest rate the pipeline sustains, as two plans the
 * bench follows run by run: short steps to find the edge, then full-duration runs to confirm
 * it. Each function says which rate to run next from the runs so far, or undefined when the
 * search is over; no I/O, so that the search is tested without a pipeline.
 */

/** One run of the search: its target rate, whether it held, and what it stored per second. */
export interface SearchRun {
  rate: number;
  ok: boolean;
  /** Messages stored per second from the first send to the last commit. */
  storedPerS: number;
}

/** Rates are tried in steps of this much at least (messages per second). */
export const SEARCH_RESOLUTION = 500;
/** Steps below the first given, when that one is not held. */
export const MAX_DESCENTS = 3;
/** Full-duration runs at most. */
export const MAX_FULL_RUNS = 3;

/**
 * A run's backlog must be gone this soon after the last send for the run to hold (ms): the
 * same second for a short step as for a full-duration run. With 5 s, a 20 s step held while
 * storing a fifth less than was sent, and the full runs then started too high: of the eleven
 * steps held with a drain of 1.2-4.9 s (2026-12-05 23:11 to 2026-12-06 03:06), no run of the
 * full duration at that rate or above kept up (history, 2026-12-06).
 */
export const DRAIN_LIMIT_MS = 1_000;

/** What a run did, as far as holding its rate goes. */
export interface RunOutcome {
  rate: number;
  /** Messages the devices sent per second while sending. */
  sentPerS: number;
  lostPoints: number;
  /** From the last send until nothing was left in JetStream. */
  drainMs: number;
  /** Every message acknowledged to the devices reached the raw stream. */
  complete: boolean;
}

/**
 * A run held its rate: the devices sent at least 95% of it (the simulator on a busy machine
 * falls a little short), nothing was lost, and the backlog was gone within DRAIN_LIMIT_MS.
 */
export function heldRate(r: RunOutcome): boolean {
  return r.sentPerS >= 0.95 * r.rate && r.lostPoints === 0 && r.drainMs <= DRAIN_LIMIT_MS && r.complete;
}

const down = (rate: number, to: number) => Math.floor(rate / to) * to;

/** The given steps, ascending, and the spacing a search below them takes. */
function ladder(steps: readonly number[]): { sorted: number[]; spacing: number } {
  const sorted = [...new Set(steps)].sort((a, b) => a - b);
  const spacing =
    sorted.length > 1
      ? sorted[1]! - sorted[0]!
      : Math.max(SEARCH_RESOLUTION, down(sorted[0]! / 8, SEARCH_RESOLUTION));
  return { sorted, spacing };
}

/**
 * The next short step. Up through `steps` (ascending) while each is held. Once one is missed,
 * halves the gap between the highest held and the lowest missed above it until it is no wider
 * than SEARCH_RESOLUTION. When the lowest step is missed, goes below it, MAX_DESCENTS times
 * at most: to what the missed run stored per second (rounded down), or one spacing lower if
 * that is less; a run that stored less than its target says where the edge is.
 */
export function nextStep(steps: readonly number[], runs: readonly SearchRun[]): number | undefined {
  const { sorted, spacing } = ladder(steps);
  if (sorted.length === 0) return undefined;
  if (runs.length === 0) return sorted[0];
  const tried = new Set(runs.map((r) => r.rate));
  const held = runs.filter((r) => r.ok).map((r) => r.rate);
  if (held.length === 0) {
    if (runs.length > MAX_DESCENTS) return undefined;
    const lowest = runs.reduce((a, b) => (b.rate < a.rate ? b : a));
    const next = Math.min(lowest.rate - spacing, down(lowest.storedPerS, SEARCH_RESOLUTION));
    return next > 0 && !tried.has(next) ? next : undefined;
  }
  const highestHeld = Math.max(...held);
  const missedAbove = runs.filter((r) => !r.ok && r.rate > highestHeld).map((r) => r.rate);
  if (missedAbove.length === 0) return sorted.find((s) => s > highestHeld);
  const lowestMissed = Math.min(...missedAbove);
  if (lowestMissed - highestHeld <= SEARCH_RESOLUTION) return undefined;
  const mid = Math.round((highestHeld + lowestMissed) / 2 / SEARCH_RESOLUTION) * SEARCH_RESOLUTION;
  return mid > highestHeld && mid < lowestMissed && !tried.has(mid) ? mid : undefined;
}

/**
 * The next full-duration run: the highest step held first; after one that does not keep up,
 * the highest held step below it or what it stored per second (rounded down), whichever is
 * lower, so that an overloaded run's throughput guides the next. Once one has kept up below
 * one that did not, once midway between them (to 250) if they are more than 500 apart.
 * MAX_FULL_RUNS at most.
 */
export function nextFullRun(held: readonly number[], runs: readonly SearchRun[]): number | undefined {
  if (runs.length >= MAX_FULL_RUNS) return undefined;
  if (runs.length === 0) return held.length > 0 ? Math.max(...held) : undefined;
  const kept = runs.filter((r) => r.ok).map((r) => r.rate);
  if (kept.length > 0) {
    const best = Math.max(...kept);
    const missedAbove = runs.filter((r) => !r.ok && r.rate > best).map((r) => r.rate);
    if (missedAbove.length === 0) return undefined;
    const lowestMissed = Math.min(...missedAbove);
    if (lowestMissed - best <= SEARCH_RESOLUTION) return undefined;
    const step = SEARCH_RESOLUTION / 2;
    const mid = Math.round((best + lowestMissed) / 2 / step) * step;
    return runs.some((r) => r.rate === mid) ? undefined : mid;
  }
  const last = runs[runs.length - 1]!;
  const heldBelow = held.filter((rate) => rate < last.rate);
  const byThroughput = Math.min(
    down(last.storedPerS, SEARCH_RESOLUTION / 2),
    last.rate - SEARCH_RESOLUTION / 2,
  );
  const next = heldBelow.length > 0 ? Math.min(Math.max(...heldBelow), byThroughput) : byThroughput;
  return next > 0 ? next : undefined;
}
