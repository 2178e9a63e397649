import { copyTimestamp } from './telemetry-batch-writer';

/** The timestamptz text of epoch ms as `to_timestamp(ms / 1000.0)` stores it, through a Date each time. */
function reference(ms: number): string {
  const exact = (ms / 1000 - 946_684_800) * 1e6; // microseconds since 2000
  const nearest = Math.round(exact);
  const us = nearest - exact === 0.5 && nearest % 2 !== 0 ? nearest - 1 : nearest; // ties to even
  const frac = ((us % 1e6) + 1e6) % 1e6;
  const seconds = new Date((us - frac) / 1000 + 946_684_800_000).toISOString().slice(0, 19);
  const digits = frac % 1000 === 0 ? String(frac / 1000).padStart(3, '0') : String(frac).padStart(6, '0');
  return `${seconds}.${digits}Z`;
}

describe('copyTimestamp', () => {
  it('writes each timestamp as its own second and fraction, however the timestamps before it ran', () => {
    // Interleaved seconds, the second boundaries, and the years before 2000 (negative
    // microseconds from PostgreSQL's epoch): the cached second must never leak into the next.
    const base = Date.UTC(2026, 10, 23, 10, 0, 0);
    const sample = [
      0,
      999,
      1000,
      1000.5,
      946_684_799_999.999,
      946_684_800_000,
      base - 0.001,
      base,
      base + 0.001,
    ];
    for (let i = 0; i < 20_000; i++)
      sample.push(
        (i % 3 === 0 ? Date.UTC(1975, 0, 1) : base) +
          Math.floor(Math.random() * 1e10) +
          Math.floor(Math.random() * 1e4) / 1e4,
      );
    const texts = sample.map((ms) => copyTimestamp(ms));
    expect(texts).toEqual(sample.map(reference));
    expect(copyTimestamp(base)).toBe('2026-11-23T10:00:00.000Z');
    expect(copyTimestamp(base + 1.5)).toBe('2026-11-23T10:00:00.001500Z');
    expect(copyTimestamp(base + 999)).toBe('2026-11-23T10:00:00.999Z');
  });
});
