import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Consumers, type ConsumerContract } from '@iot/contracts';
import { createLogger, IotMetrics } from '@iot/observability';
import { startNats, waitFor, type NatsHandle } from '@iot/testing';
import { connectNats, type NatsConnection } from './connection';
import { ConsumerRunner } from './consumer';
import { ensureAllStreams } from './provisioning';
import { JetStreamPublisher } from './publisher';

// A stream whose limits discard its oldest messages drops them whether a consumer has had
// them or not, and nats-server then counts the dropped ones in no consumer's pending: the
// lag reads 0 while readings are lost. The runner reports how much of the stream's byte
// limit its backlog fills, so that an alert can say so before (and while) it happens.
describe('ConsumerRunner backlog ratio (real nats-server)', () => {
  const KIB = 1024;
  let nats: NatsHandle;
  let nc: NatsConnection;
  const logger = createLogger('test', 'silent');

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectNats({ servers: nats.urls, name: 'backlog-test', logger });
    await ensureAllStreams(nc, { replicas: 1 });
    // The normalized stream, shrunk to 64 KiB so that a test can overrun it.
    const jsm = await jetstreamManager(nc);
    const { config } = await jsm.streams.info('TELEMETRY_NORMALIZED_V1');
    await jsm.streams.update('TELEMETRY_NORMALIZED_V1', { ...config, max_bytes: 64 * KIB });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('reads the share of the limit a stalled consumer has not had, 1 once the stream discards it, 0 when caught up', async () => {
    const metrics = new IotMetrics('test');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const contract: ConsumerContract = {
      ...Consumers.tsdbWriter,
      durable: 'test-backlog',
      maxAckPending: 100,
    };
    const sut = new ConsumerRunner<Uint8Array>({
      nc,
      js: jetstream(nc),
      contract,
      decoder: 'bytes',
      handler: { kind: 'message', fn: () => gate },
      publisher: new JetStreamPublisher(nc, logger),
      logger,
      metrics,
      batchSize: 8,
      lagIntervalMs: 100,
    });
    const ratio = async () =>
      (await metrics.consumerBacklogRatio.get()).values.find((v) => v.labels.consumer === 'test-backlog')
        ?.value ?? -1;
    const publish = async (from: number, to: number) => {
      const js = jetstream(nc);
      for (let i = from; i < to; i++)
        await js.publish('iot.normalized.v1.t1.d1', 'x'.repeat(KIB), { msgID: `m${i}` });
    };
    await sut.start();
    try {
      // 40 KiB in a 64 KiB stream, 16 of the 40 messages with the stalled handler.
      await publish(0, 40);
      await waitFor(
        'a backlog ratio between 0 and 1',
        async () => (await ratio()) > 0.2 && (await ratio()) < 0.6,
        5_000,
      );
      // 140 KiB sent: the stream has discarded what the consumer holds and more.
      await publish(40, 140);
      await waitFor('a backlog ratio near 1', async () => (await ratio()) > 0.95, 5_000);
      release();
      await waitFor('the backlog gone', async () => (await ratio()) === 0, 10_000);
    } finally {
      release();
      await sut.stop();
    }
  });
});
