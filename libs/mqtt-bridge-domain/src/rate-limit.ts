/** Sustained rate and burst of one device's messages. */
export interface RateLimit {
  /** Messages per second, sustained. */
  ratePerS: number;
  /** Messages that may arrive at once after a quiet spell. */
  burst: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
  /** Messages dropped since the device's status last said so. */
  dropped: number;
  lastNoticeMs: number;
}

export type RateDecision = { allowed: true } | { allowed: false; notify: boolean; dropped: number };

/**
 * A token bucket per device: each message takes a token; tokens come back at `ratePerS` up
 * to `burst`. A message without a token is dropped, and at most once per `noticeEveryMs`
 * the caller is told to say so in the device's status, with the count since the last notice.
 * Buckets of devices quiet for long are forgotten, so memory follows the active fleet.
 */
export class DeviceRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweepMs = 0;

  constructor(
    private readonly limitFor: (device: string, model: string) => RateLimit,
    private readonly noticeEveryMs = 60_000,
    private readonly forgetAfterMs = 10 * 60_000,
  ) {}

  take(device: string, model: string, nowMs = Date.now()): RateDecision {
    const limit = this.limitFor(device, model);
    let b = this.buckets.get(device);
    if (!b) {
      b = { tokens: limit.burst, updatedMs: nowMs, dropped: 0, lastNoticeMs: 0 };
      this.buckets.set(device, b);
    }
    b.tokens = Math.min(limit.burst, b.tokens + ((nowMs - b.updatedMs) / 1000) * limit.ratePerS);
    b.updatedMs = nowMs;
    this.sweep(nowMs);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { allowed: true };
    }
    b.dropped++;
    if (nowMs - b.lastNoticeMs >= this.noticeEveryMs) {
      const dropped = b.dropped;
      b.dropped = 0;
      b.lastNoticeMs = nowMs;
      return { allowed: false, notify: true, dropped };
    }
    return { allowed: false, notify: false, dropped: b.dropped };
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(nowMs: number): void {
    if (nowMs - this.lastSweepMs < this.forgetAfterMs) return;
    this.lastSweepMs = nowMs;
    for (const [device, b] of this.buckets)
      if (nowMs - b.updatedMs > this.forgetAfterMs) this.buckets.delete(device);
  }
}

/** Parses `RATE/BURST`, e.g. `1/20`: 1 message per second sustained, 20 at once. */
export function parseRateLimit(spec: string): RateLimit {
  const m = /^([0-9]*\.?[0-9]+)\/([0-9]+)$/.exec(spec.trim());
  if (!m || !(Number(m[1]) > 0) || !(Number(m[2]) >= 1))
    throw new Error(`rate limit "${spec}" is not RATE/BURST with RATE > 0 and BURST >= 1, e.g. 1/20`);
  return { ratePerS: Number(m[1]), burst: Number(m[2]) };
}

/**
 * Parses `MODEL=rate/burst` pairs, e.g. `zenthos-esp32=0.2/5,gateway=50/200`, into limits
 * per model; models not named get `fallback`.
 */
export function rateLimitsByModel(
  spec: string,
  fallback: RateLimit,
): (device: string, model: string) => RateLimit {
  const table = new Map<string, RateLimit>();
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [model, limit] = part.split('=');
    if (!model || !/^[A-Za-z0-9_-]+$/.test(model) || limit === undefined)
      throw new Error(`rate limit "${part}" is not MODEL=RATE/BURST, e.g. zenthos-esp32=1/10`);
    table.set(model, parseRateLimit(limit));
  }
  return (_device, model) => table.get(model) ?? fallback;
}
