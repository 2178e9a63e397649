import { jetstreamManager } from '@nats-io/jetstream';
import { createLogger } from '@iot/observability';
import { sleep, startNats, type NatsHandle } from '@iot/testing';
import { connectNats, type NatsConnection } from './connection';
import { ensureAllStreams } from './provisioning';
import { JetStreamPublisher } from './publisher';

describe('JetStreamPublisher (real nats-server)', () => {
  let nats: NatsHandle;
  let nc: NatsConnection;
  const logger = createLogger('test', 'silent');

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectNats({ servers: nats.urls, name: 'publisher-test', logger });
    await ensureAllStreams(nc, { replicas: 1 });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('keeps at most the window of publishes awaiting acks, and every one is stored', async () => {
    const sut = new JetStreamPublisher(nc, logger, { maxInFlight: 8 });
    let maxSeen = 0;
    const all = Array.from({ length: 500 }, (_, i) => {
      const p = sut.publish('iot.raw.v1.t1.d1', `{"n":${i}}`, { msgId: `window-${i}` });
      maxSeen = Math.max(maxSeen, sut.inFlight);
      return p;
    });
    const acks = await Promise.all(all);
    expect(maxSeen).toBe(8);
    expect(sut.inFlight).toBe(0);
    expect(new Set(acks.map((a) => a.seq)).size).toBe(500);
    expect((await (await jetstreamManager(nc)).streams.info('TELEMETRY_RAW_V1')).state.messages).toBe(500);
  });

  it('retries a subject no stream takes until its time is up, then says why', async () => {
    const sut = new JetStreamPublisher(nc, logger, { retryForMs: 800, timeoutMs: 300 });
    const error = await sut.publish('nowhere.at.all', 'x', { msgId: 'lost-1' }).catch((e: Error) => e);
    expect(String(error)).toMatch(
      /publish to nowhere\.at\.all failed after \d+ attempt\(s\): Error: no responders/,
    );
    // It tried again (with the same message id) before giving up.
    expect(Number(/after (\d+) attempt/.exec(String(error))![1])).toBeGreaterThan(1);
    sut.close();
  });

  it('times out an ack that never comes, also after a quiet spell in which no ack was awaited', async () => {
    // A plain subscriber takes the subject and never answers: the ack can only time out.
    const swallow = nc.subscribe('swallowed.v1.>');
    const sut = new JetStreamPublisher(nc, logger, { retryForMs: 800, timeoutMs: 300 });
    await sut.publish('iot.raw.v1.t1.d1', '{"quiet":1}', { msgId: 'before-quiet-1' });
    await sleep(300); // nothing awaited: the timeout sweep stops
    const error = await sut.publish('swallowed.v1.x', 'x', { msgId: 'unanswered-1' }).catch((e: Error) => e);
    expect(String(error)).toMatch(
      /publish to swallowed\.v1\.x failed after \d+ attempt\(s\): Error: timeout/,
    );
    expect(sut.inFlight).toBe(0);
    swallow.unsubscribe();
    sut.close();
  });

  it('stores the headers it was given, with the trace and message id, and refuses a line break in one', async () => {
    const sut = new JetStreamPublisher(nc, logger);
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const ack = await sut.publish('iot.raw.v1.t1.d3', 'x', {
      msgId: 'hdr-1',
      traceparent,
      headers: { 'iot-tenant': 't1', 'iot-device': 'd3' },
    });
    const stored = await (
      await jetstreamManager(nc)
    ).streams.getMessage('TELEMETRY_RAW_V1', { seq: ack.seq });
    expect(stored!.header.get('Nats-Msg-Id')).toBe('hdr-1');
    expect(stored!.header.get('traceparent')).toBe(traceparent);
    expect(stored!.header.get('iot-device')).toBe('d3');
    const before = (await (await jetstreamManager(nc)).streams.info('TELEMETRY_RAW_V1')).state.messages;
    await expect(
      sut.publish('iot.raw.v1.t1.d3', 'x', { msgId: 'evil\r\nNats-Expected-Stream: X' }),
    ).rejects.toThrow(/NATS header 'Nats-Msg-Id' cannot hold a line break/);
    expect((await (await jetstreamManager(nc)).streams.info('TELEMETRY_RAW_V1')).state.messages).toBe(before);
  });

  it('stores a message published twice with the same id once', async () => {
    const sut = new JetStreamPublisher(nc, logger);
    const first = await sut.publish('iot.raw.v1.t1.d2', 'x', { msgId: 'same-id' });
    const second = await sut.publish('iot.raw.v1.t1.d2', 'x', { msgId: 'same-id' });
    expect(second.duplicate).toBe(true);
    expect(second.seq).toBe(first.seq);
  });
});
