import type { ConsumerInfo } from '@nats-io/jetstream';
import { Consumers, Streams } from '@iot/contracts';
import { isJetStreamUnavailable, keptFilter, streamMaxBytes, whenJetStreamAnswers } from './provisioning';

describe('whenJetStreamAnswers', () => {
  const logger = {
    warns: [] as string[],
    warn(_o: object, msg: string) {
      this.warns.push(msg);
    },
  };

  it('tells a cluster still forming from a request the server refuses', () => {
    expect(isJetStreamUnavailable(Object.assign(new Error('timeout'), { code: 'TIMEOUT' }))).toBe(true);
    expect(isJetStreamUnavailable(new Error('no responders available for request'))).toBe(true);
    expect(isJetStreamUnavailable(new Error('JetStream system temporarily unavailable'))).toBe(true);
    expect(
      isJetStreamUnavailable(new Error('stream name already in use with a different configuration')),
    ).toBe(false);
    expect(isJetStreamUnavailable(new Error('invalid JSON'))).toBe(false);
  });

  it('retries while JetStream does not answer, saying so, then returns the result', async () => {
    let calls = 0;
    const result = await whenJetStreamAnswers(
      'streams',
      async () => {
        if (++calls < 3) throw Object.assign(new Error('timeout'), { code: 'TIMEOUT' });
        return 'provisioned';
      },
      logger,
      1,
    );
    expect(result).toBe('provisioned');
    expect(calls).toBe(3);
    expect(logger.warns).toEqual([
      'streams: JetStream does not answer yet; retrying',
      'streams: JetStream does not answer yet; retrying',
    ]);
  });

  it('throws any other error at once', async () => {
    let calls = 0;
    await expect(
      whenJetStreamAnswers(
        'streams',
        async () => {
          calls++;
          throw new Error('subjects overlap with an existing stream');
        },
        logger,
        1,
      ),
    ).rejects.toThrow(/overlap/);
    expect(calls).toBe(1);
  });
});

describe('streamMaxBytes', () => {
  const streams = Object.values(Streams);
  const own = streams.reduce((sum, st) => sum + st.maxBytes, 0);
  const MIB = 1024 ** 2;

  it("keeps each stream's own limit without a budget or within one", () => {
    for (const budget of [undefined, own, own * 2]) {
      const limits = streamMaxBytes(streams, budget);
      for (const st of streams) expect(limits.get(st.name)).toBe(st.maxBytes);
    }
  });

  it('cuts every limit in proportion to fit a smaller budget, in whole MiB', () => {
    const budget = 768 * MIB;
    const limits = streamMaxBytes(streams, budget);
    const total = [...limits.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeLessThanOrEqual(budget);
    expect(total).toBeGreaterThan(budget - streams.length * MIB);
    for (const st of streams) {
      const cut = limits.get(st.name)!;
      expect(cut % MIB).toBe(0);
      expect(cut).toBeGreaterThan(0);
      expect(cut / budget).toBeCloseTo(st.maxBytes / own, 2);
    }
  });

  it('leaves no stream without a limit however small the budget (0 would mean none)', () => {
    for (const limit of streamMaxBytes(streams, 4 * MIB).values()) expect(limit).toBeGreaterThanOrEqual(MIB);
  });
});

describe('keptFilter', () => {
  const info = (config: Partial<ConsumerInfo['config']>) => ({ config }) as ConsumerInfo;

  it("names the filter a durable kept through an update (nats-server 2.9), not the contract's", () => {
    // Demux's consumer takes the whole raw stream now; one made before had a filter.
    expect(keptFilter(info({ filter_subject: 'iot.raw.v1.>' }), Consumers.demux)).toEqual(['iot.raw.v1.>']);
    expect(keptFilter(info({}), Consumers.normalizer)).toEqual([]);
  });

  it("says nothing where the durable has its contract's filter, in either form", () => {
    expect(keptFilter(info({}), Consumers.demux)).toBeUndefined();
    expect(keptFilter(info({ filter_subject: '' }), Consumers.demux)).toBeUndefined();
    expect(keptFilter(info({ filter_subject: 'iot.decoded.v1.>' }), Consumers.normalizer)).toBeUndefined();
    expect(keptFilter(info({ filter_subjects: ['iot.decoded.v1.>'] }), Consumers.normalizer)).toBeUndefined();
  });
});
