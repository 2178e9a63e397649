import { settleEach, type Delivery } from './consumer';

describe('settleEach', () => {
  const batch = ['ok', 'throws', 'rejects', 'undefined', 'later'].map(
    (payload) => ({ payload, meta: {} }) as Delivery<string>,
  );

  it('answers the failures by index, whether the handler threw, rejected, or rejected with nothing; the rest succeed', async () => {
    const handled: string[] = [];
    const failures = await settleEach(batch, (d) => {
      if (d.payload === 'throws') throw new Error('bad payload');
      if (d.payload === 'rejects') return Promise.reject(new Error('nats down'));
      if (d.payload === 'undefined') return Promise.reject(undefined);
      return new Promise<void>((resolve) =>
        setTimeout(
          () => {
            handled.push(d.payload);
            resolve();
          },
          d.payload === 'later' ? 5 : 0,
        ),
      );
    });
    expect([...failures.keys()]).toEqual([1, 2, 3]);
    expect((failures.get(1) as Error).message).toBe('bad payload');
    expect((failures.get(2) as Error).message).toBe('nats down');
    expect((failures.get(3) as Error).message).toBe('handler threw undefined');
    // Settled only once every handler is done, the slow one too.
    expect(handled.sort()).toEqual(['later', 'ok']);
  });
});
