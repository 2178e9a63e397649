import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Consumers, Subjects } from '@iot/contracts';
import { connectNats, ensureAllStreams, ensureConsumer, type NatsConnection } from '@iot/messaging';
import { createLogger, IotMetrics } from '@iot/observability';
import { startNats, type NatsHandle } from '@iot/testing';
import type { BridgeEnv } from './env';
import { RawStreamGate } from './raw-stream-gate';

describe('RawStreamGate: HTTP ingest refused before the raw stream discards (real nats-server)', () => {
  const KIB = 1024;
  let nats: NatsHandle;
  let nc: NatsConnection;
  const logger = createLogger('test', 'silent');

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectNats({ servers: nats.urls, name: 'raw-stream-gate-test', logger });
    await ensureAllStreams(nc, { replicas: 1 });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  // The gate reads demux's backlog at most once a second. A flood within that second (here
  // 100 messages of 1 KiB into a raw stream of 64 KiB, where demux has 10 not yet processed)
  // would pass it unseen, and the stream would discard what demux has not had; the gate reads
  // again once it has taken what the last reading left room for.
  it('reads again within the second once the messages taken fill the room the last reading left', async () => {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const raw = 'TELEMETRY_RAW_V1';
    const { config } = await jsm.streams.info(raw);
    await jsm.streams.update(raw, { ...config, max_bytes: 64 * KIB });
    await ensureConsumer(jsm, Consumers.demux);
    const subject = Subjects.raw('flood', 'd1');
    const body = 'x'.repeat(KIB);
    for (let i = 0; i < 10; i++) await js.publish(subject, body, { msgID: `before-${i}` });
    const firstSeq = (await jsm.streams.info(raw)).state.first_seq;

    const gate = new RawStreamGate(
      { INGEST_REFUSE_RATIO: 0.5 } as BridgeEnv,
      nc,
      logger,
      new IotMetrics('test'),
    );
    let taken = 0;
    let refused = false;
    for (let i = 0; i < 100 && !refused; i++) {
      if (await gate.refusing()) refused = true;
      else {
        await js.publish(subject, body, { msgID: `flood-${i}` });
        taken++;
      }
    }
    const state = (await jsm.streams.info(raw)).state;
    const demux = await jsm.consumers.info(raw, Consumers.demux.durable);
    expect({ refused, firstSeq: state.first_seq, pending: demux.num_pending }).toEqual({
      refused: true,
      firstSeq, // nothing discarded
      pending: 10 + taken,
    });
    // Taken until the backlog passed half the stream (the ratio), not to its end.
    expect(taken).toBeGreaterThan(20);
    expect(gate.reason).toMatch(/^the platform is behind: demux has \d+% of TELEMETRY_RAW_V1's limit/);
  });
});
