import { isJetStreamUnavailable, whenJetStreamAnswers } from './provisioning';

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
