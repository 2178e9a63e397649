import { DeviceRateLimiter, parseRateLimit, rateLimitsByModel } from './rate-limit';

function newTestService(ratePerS = 1, burst = 3) {
  return new DeviceRateLimiter(() => ({ ratePerS, burst }), 60_000, 600_000);
}

describe('DeviceRateLimiter', () => {
  it('lets a burst through, then the sustained rate', () => {
    const sut = newTestService(1, 3);
    const t0 = 1_000_000;
    const first = [0, 1, 2, 3].map(() => sut.take('d1', 'm', t0).allowed);
    expect(first).toEqual([true, true, true, false]);
    expect(sut.take('d1', 'm', t0 + 500).allowed).toBe(false);
    expect(sut.take('d1', 'm', t0 + 1_000).allowed).toBe(true);
  });

  it('keeps devices apart', () => {
    const sut = newTestService(1, 1);
    expect(sut.take('d1', 'm', 0).allowed).toBe(true);
    expect(sut.take('d2', 'm', 0).allowed).toBe(true);
    expect(sut.take('d1', 'm', 0).allowed).toBe(false);
  });

  it('asks for a status notice at most once a minute, with the count of drops since the last', () => {
    const sut = newTestService(1, 1);
    sut.take('d1', 'm', 100_000);
    expect(sut.take('d1', 'm', 100_000)).toEqual({ allowed: false, notify: true, dropped: 1 });
    expect(sut.take('d1', 'm', 100_100)).toEqual({ allowed: false, notify: false, dropped: 1 });
    expect(sut.take('d1', 'm', 100_200)).toEqual({ allowed: false, notify: false, dropped: 2 });
    sut.take('d1', 'm', 160_000); // a token came back
    expect(sut.take('d1', 'm', 160_001)).toEqual({ allowed: false, notify: true, dropped: 3 });
  });

  it('forgets devices that went quiet', () => {
    const sut = newTestService();
    sut.take('d1', 'm', 0);
    sut.take('d2', 'm', 700_000);
    expect(sut.size).toBe(1);
  });
});

describe('rateLimitsByModel', () => {
  it('reads MODEL=RATE/BURST pairs, with a fallback', () => {
    const f = rateLimitsByModel('zenthos-esp32=0.2/5, gateway=50/200', { ratePerS: 1, burst: 10 });
    expect(f('x', 'gateway')).toEqual({ ratePerS: 50, burst: 200 });
    expect(f('x', 'zenthos-esp32')).toEqual({ ratePerS: 0.2, burst: 5 });
    expect(f('x', 'other')).toEqual({ ratePerS: 1, burst: 10 });
  });
  it('refuses a malformed pair, saying the expected form', () => {
    expect(() => rateLimitsByModel('gateway=fast', { ratePerS: 1, burst: 1 })).toThrow(
      'rate limit "fast" is not RATE/BURST',
    );
    expect(() => rateLimitsByModel('gateway', { ratePerS: 1, burst: 1 })).toThrow(
      'rate limit "gateway" is not MODEL=RATE/BURST',
    );
    expect(() => parseRateLimit('0/5')).toThrow('rate limit "0/5" is not RATE/BURST with RATE > 0');
    expect(parseRateLimit('0.5/3')).toEqual({ ratePerS: 0.5, burst: 3 });
  });
});
