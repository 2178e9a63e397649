import type { NormalizedPoint } from '@iot/contracts';
import { DeadbandFilter } from './deadband';

const spec = { tolerance: 0.5, maxSilenceMs: 60_000 };
const p = (value: number, quality: NormalizedPoint['quality'] = 'good'): NormalizedPoint => ({
  metric: 'temperature',
  value,
  unit: 'Cel',
  quality,
});

function newTestService(maxEntries?: number) {
  return new DeadbandFilter(maxEntries);
}

describe('DeadbandFilter', () => {
  it('drops values within the tolerance of the last stored one, and stores a real change', () => {
    const sut = newTestService();
    expect([
      sut.admit('t', 'd', 1_000, p(20), spec),
      sut.admit('t', 'd', 2_000, p(20.4), spec),
      sut.admit('t', 'd', 3_000, p(20.6), spec),
    ]).toEqual([true, false, true]);
  });

  it('compares with the last stored value, so a slow drift is stored once it adds up', () => {
    const sut = newTestService();
    const admitted = [20, 20.3, 20.45, 20.55, 20.7].map((v, i) =>
      sut.admit('t', 'd', (i + 1) * 1000, p(v), spec),
    );
    expect(admitted).toEqual([true, false, false, true, false]);
  });

  it('stores an unchanged value again after the maximum silence, and on a change of quality', () => {
    const sut = newTestService();
    sut.admit('t', 'd', 0, p(20), spec);
    expect(sut.admit('t', 'd', 59_000, p(20), spec)).toBe(false);
    expect(sut.admit('t', 'd', 60_000, p(20), spec)).toBe(true);
    expect(sut.admit('t', 'd', 61_000, p(20, 'clamped'), spec)).toBe(true);
  });

  it('keeps devices, tenants and metrics apart, lets late points through, and is off without a spec', () => {
    const sut = newTestService();
    sut.admit('t', 'd', 5_000, p(20), spec);
    expect(sut.admit('t', 'e', 5_000, p(20), spec)).toBe(true);
    expect(sut.admit('u', 'd', 5_000, p(20), spec)).toBe(true);
    expect(sut.admit('t', 'd', 4_000, p(20), spec)).toBe(true);
    expect(sut.admit('t', 'd', 6_000, p(20), undefined)).toBe(true);
  });

  it('bounds its memory', () => {
    const sut = newTestService(100);
    for (let i = 0; i < 1000; i++) sut.admit('t', `d${i}`, 1, p(1), spec);
    expect(sut.size).toBeLessThanOrEqual(100);
  });
});
