import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { Consumers, Headers, type ConsumerContract } from '@iot/contracts';
import { createLogger, IotMetrics } from '@iot/observability';
import { sleep, startNats, waitFor, type NatsHandle } from '@iot/testing';
import { connectNats, type NatsConnection } from './connection';
import { ConsumerRunner, type BatchHandler, type MessageMeta } from './consumer';
import { PermanentError, RetryableError } from './errors';
import { headerRecord, receivedHeaders } from './headers';
import { ensureAllStreams, ensureConsumer } from './provisioning';
import { JetStreamPublisher } from './publisher';

describe('ConsumerRunner settlement (real nats-server)', () => {
  let nats: NatsHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let publisher: JetStreamPublisher;
  const logger = createLogger('test', 'silent');

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectNats({ servers: nats.urls, name: 'consumer-test', logger });
    await ensureAllStreams(nc, { replicas: 1 });
    js = jetstream(nc);
    publisher = new JetStreamPublisher(nc, logger);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  // Each test uses its own tenant and a consumer filtered to it, so tests do not share messages.
  function newTestService(
    tenant: string,
    handler: (payload: Uint8Array, meta: MessageMeta) => Promise<void>,
    maxDeliver = 3,
    concurrency = 1,
    contractChanges: Partial<ConsumerContract> = {},
  ) {
    const contract: ConsumerContract = {
      ...Consumers.demux,
      durable: `test-${tenant}`,
      stage: 'demux',
      filterSubjects: [`iot.raw.v1.${tenant}.>`],
      maxDeliver,
      ackWaitMs: 5_000,
      ...contractChanges,
    };
    const metrics = new IotMetrics('test');
    const sut = new ConsumerRunner<Uint8Array>({
      nc,
      js,
      contract,
      decoder: 'bytes',
      handler: { kind: 'message', fn: handler },
      publisher,
      logger,
      metrics,
      batchSize: 16,
      concurrency,
    });
    return { sut, contract, metrics };
  }

  /** A runner with a batch handler, on its own tenant's consumer with an ack wait of 30 s. */
  function newBatchRunner(
    tenant: string,
    fn: BatchHandler<Uint8Array>,
    options: { batchSize: number; minBatch: number; lingerMs?: number; maxAckPending?: number },
  ): ConsumerRunner<Uint8Array> {
    const { maxAckPending, ...sizes } = options;
    const contract: ConsumerContract = {
      ...Consumers.demux,
      durable: `test-${tenant}`,
      stage: 'demux',
      filterSubjects: [`iot.raw.v1.${tenant}.>`],
      ackWaitMs: 30_000,
      ...(maxAckPending === undefined ? {} : { maxAckPending }),
    };
    return new ConsumerRunner<Uint8Array>({
      nc,
      js,
      contract,
      decoder: 'bytes',
      handler: { kind: 'batch', fn },
      publisher,
      logger,
      metrics: new IotMetrics('test'),
      ...sizes,
    });
  }

  async function dlqMessages(tenant: string) {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('DLQ_V1', { subjects_filter: `iot.dlq.v1.demux.${tenant}` });
    const out: Array<{ reason: string; detail: string; original: string; data: string; device: string }> = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && seq > 0; seq++) {
      const m = await jsm.streams.getMessage('DLQ_V1', { seq }).catch(() => null);
      if (!m || m.subject !== `iot.dlq.v1.demux.${tenant}`) continue;
      out.push({
        reason: m.header.get(Headers.dlqReason),
        detail: m.header.get(Headers.dlqDetail),
        original: m.header.get(Headers.originalSubject),
        data: new TextDecoder().decode(m.data),
        device: m.header.get(Headers.device),
      });
    }
    return out;
  }

  it('acks what the handler returns for, and sees each message once', async () => {
    const seen: string[] = [];
    const { sut } = newTestService('ok', async (p) => void seen.push(new TextDecoder().decode(p)));
    await sut.start();
    for (let i = 0; i < 20; i++) await publisher.publish('iot.raw.v1.ok.d1', `m${i}`, { msgId: `ok-${i}` });
    await waitFor('20 messages', () => seen.length >= 20, 10_000);
    await sut.stop();
    expect(seen.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`).sort());
    const info = await (await jetstreamManager(nc)).consumers.info('TELEMETRY_RAW_V1', 'test-ok');
    expect(info.num_ack_pending + info.num_pending).toBe(0);
  });

  it("hands over only the subjects it handles, and acks another service's unhandled (handledSubjects)", async () => {
    const seen: string[] = [];
    const { sut, metrics } = newTestService(
      'skip',
      async (p, meta) => void seen.push(`${meta.subject} ${new TextDecoder().decode(p)}`),
      3,
      1,
      // The whole raw stream, as demux takes it: device status and the other tests' messages too.
      { filterSubjects: [], handledSubjects: ['iot.raw.v1.skip.>'] },
    );
    await sut.start();
    for (let i = 0; i < 5; i++) {
      await publisher.publish('iot.raw.v1.skip.d1', `m${i}`, { msgId: `skip-raw-${i}` });
      if (i % 2 === 0)
        await publisher.publish('iot.status.v1.skip.d1', `s${i}`, { msgId: `skip-status-${i}` });
    }
    const jsm = await jetstreamManager(nc);
    await waitFor(
      'every message settled',
      async () => {
        const info = await jsm.consumers.info('TELEMETRY_RAW_V1', 'test-skip');
        return info.delivered.stream_seq > 0 && info.num_pending + info.num_ack_pending === 0;
      },
      10_000,
    );
    await sut.stop();
    expect(seen.sort()).toEqual(Array.from({ length: 5 }, (_, i) => `iot.raw.v1.skip.d1 m${i}`));
    const inStream = (await jsm.streams.info('TELEMETRY_RAW_V1')).state.messages;
    const text = await metrics.metricsText();
    expect(text).toContain(
      `iot_messages_processed_total{stage="demux",outcome="skipped",service="test"} ${inStream - 5}`,
    );
    expect(text).toContain('iot_messages_processed_total{stage="demux",outcome="ok",service="test"} 5');
    expect(await dlqMessages('skip')).toEqual([]);
  });

  it('retries a retryable failure with backoff until it passes', async () => {
    const deliveries: number[] = [];
    const { sut } = newTestService('retry', async (_p, meta) => {
      deliveries.push(meta.deliveryCount);
      if (meta.deliveryCount < 2) throw new RetryableError('database is down');
    });
    await sut.start();
    await publisher.publish('iot.raw.v1.retry.d1', 'x', { msgId: 'retry-1' });
    await waitFor('second delivery', () => deliveries.length >= 2, 10_000);
    await sut.stop();
    expect(deliveries).toEqual([1, 2]);
    expect(await dlqMessages('retry')).toEqual([]);
  });

  it('dead-letters a permanent failure at once, with reason, original subject, headers and payload', async () => {
    let calls = 0;
    const { sut } = newTestService('perm', async () => {
      calls++;
      throw new PermanentError('unknown-device', 'device d9 is not registered');
    });
    await sut.start();
    await publisher.publish('iot.raw.v1.perm.d9', 'payload-bytes', {
      msgId: 'perm-1',
      headers: { [Headers.device]: 'd9' },
    });
    await waitFor('a DLQ message', async () => (await dlqMessages('perm')).length === 1, 10_000);
    await sut.stop();
    expect(calls).toBe(1);
    // Terminated, not left unacknowledged to come back after the ack wait.
    await waitFor(
      'the dead-lettered message settled',
      async () => {
        const info = await (await jetstreamManager(nc)).consumers.info('TELEMETRY_RAW_V1', 'test-perm');
        return info.num_ack_pending === 0 && info.num_pending === 0;
      },
      3_000,
    );
    expect(await dlqMessages('perm')).toEqual([
      {
        reason: 'unknown-device',
        detail: 'device d9 is not registered',
        original: 'iot.raw.v1.perm.d9',
        data: 'payload-bytes',
        device: 'd9',
      },
    ]);
  });

  it('dead-letters a message that keeps failing on its last delivery', async () => {
    const { sut } = newTestService(
      'poison',
      async () => {
        throw new Error('surprise');
      },
      2,
    );
    await sut.start();
    await publisher.publish('iot.raw.v1.poison.d1', 'p', { msgId: 'poison-1' });
    await waitFor('a DLQ message', async () => (await dlqMessages('poison')).length === 1, 15_000);
    await sut.stop();
    const [dlq] = await dlqMessages('poison');
    expect(dlq!.reason).toBe('max-deliveries');
    expect(dlq!.detail).toBe('gave up after 2 deliveries: surprise');
  });

  it('recreates its durable consumer when it is deleted, and goes on', async () => {
    const seen: string[] = [];
    const { sut } = newTestService('recreate', async (p) => void seen.push(new TextDecoder().decode(p)));
    await sut.start();
    await publisher.publish('iot.raw.v1.recreate.d1', 'before', { msgId: 'rc-1' });
    await waitFor('first message', () => seen.length === 1, 10_000);
    await (await jetstreamManager(nc)).consumers.delete('TELEMETRY_RAW_V1', 'test-recreate');
    await waitFor(
      'the consumer to exist again',
      async () => {
        await (await jetstreamManager(nc)).consumers.info('TELEMETRY_RAW_V1', 'test-recreate');
        return true;
      },
      30_000,
    );
    await publisher.publish('iot.raw.v1.recreate.d1', 'after', { msgId: 'rc-2' });
    await waitFor('the message after the deletion', () => seen.includes('after'), 30_000);
    await sut.stop();
  });

  it('processes several batches at once with concurrency, and on stop settles every message it took', async () => {
    let active = 0;
    let most = 0;
    const done: string[] = [];
    const { sut } = newTestService(
      'concurrent',
      async (p) => {
        most = Math.max(most, ++active);
        await new Promise((r) => setTimeout(r, 300));
        active--;
        done.push(new TextDecoder().decode(p));
      },
      3,
      3,
    );
    await sut.start();
    for (let i = 0; i < 64; i++)
      await publisher.publish('iot.raw.v1.concurrent.d1', `c${i}`, { msgId: `concurrent-${i}` });
    await waitFor('the first batches to run', () => most > 16, 10_000);
    await sut.stop();
    // More than one batch of 16 was in the handler at once, never more than three.
    expect(most).toBeGreaterThan(16);
    expect(most).toBeLessThanOrEqual(48);
    expect(new Set(done).size).toBe(done.length);
    // Everything it took was acked before stop() returned: a second runner on the same durable
    // gets the rest and none of those again. (What was on the wire when stop() came is the
    // next test's. Stopping this second runner right after its start, when the first had left
    // it nothing, hung until stop() learned to close a consume opened after it.)
    const rest: string[] = [];
    const { sut: second } = newTestService('concurrent', async (p) => {
      rest.push(new TextDecoder().decode(p));
    });
    await second.start();
    await waitFor('the other messages', () => done.length + rest.length >= 64, 20_000);
    await second.stop();
    expect(new Set([...done, ...rest]).size).toBe(64);
    expect(done.length + rest.length).toBe(64);
  });

  it('starts a batch once minBatch messages are in, and holds a smaller one for its linger (stop settles it)', async () => {
    const batches: string[][] = [];
    const sut = newBatchRunner(
      'minbatch',
      async (batch) => void batches.push(batch.map((d) => new TextDecoder().decode(d.payload))),
      // A linger longer than the test: only minBatch or stop() can start a batch.
      { batchSize: 16, minBatch: 4, lingerMs: 600_000 },
    );
    await sut.start();
    for (let i = 0; i < 4; i++)
      await publisher.publish('iot.raw.v1.minbatch.d1', `m${i}`, { msgId: `minbatch-${i}` });
    await waitFor('the batch of four', () => batches.length === 1, 10_000);
    expect(batches).toEqual([['m0', 'm1', 'm2', 'm3']]);
    for (let i = 4; i < 6; i++)
      await publisher.publish('iot.raw.v1.minbatch.d1', `m${i}`, { msgId: `minbatch-${i}` });
    const jsm = await jetstreamManager(nc);
    // Both delivered to the runner (pending an ack there), and not handed to the handler.
    await waitFor(
      'the two to be delivered',
      async () => (await jsm.consumers.info('TELEMETRY_RAW_V1', 'test-minbatch')).num_ack_pending === 2,
      10_000,
    );
    expect(batches).toHaveLength(1);
    await sut.stop();
    expect(batches).toEqual([
      ['m0', 'm1', 'm2', 'm3'],
      ['m4', 'm5'],
    ]);
    // Acked: the server applies acks apart from API requests, so it may take a moment to say so
    // (well within the 30 s ack wait, after which unacked messages would come back).
    await waitFor(
      'the last two acks',
      async () => (await jsm.consumers.info('TELEMETRY_RAW_V1', 'test-minbatch')).num_ack_pending === 0,
      5_000,
    );
    expect((await jsm.consumers.info('TELEMETRY_RAW_V1', 'test-minbatch')).num_pending).toBe(0);
  });

  it('stop() leaves no message to its ack wait, stopped in the middle of a backlog', async () => {
    // A restart under load: the server keeps a pull's worth of messages on the way to the
    // runner. Each one it sent must be settled by stop(), not dropped on arrival to come back
    // only after the ack wait (30 s here, longer than this test waits).
    const total = 3_000;
    // 4 KiB each: a pull's worth of messages takes many socket reads to arrive.
    const padding = 'x'.repeat(4_096);
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        publisher.publish('iot.raw.v1.restart.d1', `r${i} ${padding}`, { msgId: `restart-${i}` }),
      ),
    );
    const seen: string[] = [];
    let stopped: Promise<void> | undefined;
    const sut: ConsumerRunner<Uint8Array> = newBatchRunner(
      'restart',
      async (batch) => {
        for (const d of batch) seen.push(new TextDecoder().decode(d.payload).split(' ')[0]!);
        // The stop comes with the first batch, while the rest of the first pull streams in.
        stopped ??= sut.stop();
      },
      // Nor would the server hand out more than 256 unacked, whatever the runner asked for:
      // the backlog stays larger than what is in flight.
      { batchSize: 64, minBatch: 64, maxAckPending: 256 },
    );
    await sut.start();
    await waitFor('the stop', () => stopped !== undefined, 10_000);
    await stopped;
    expect(seen.length).toBeLessThan(total);
    const jsm = await jetstreamManager(nc);
    // Acks are applied apart from API requests: give them a moment, far below the ack wait.
    await waitFor(
      'no message delivered and left unsettled',
      async () => (await jsm.consumers.info('TELEMETRY_RAW_V1', 'test-restart')).num_ack_pending === 0,
      5_000,
    );
    const info = await jsm.consumers.info('TELEMETRY_RAW_V1', 'test-restart');
    // Every message the server handed out was seen once; the rest wait for the next runner.
    expect(new Set(seen).size).toBe(seen.length);
    expect(info.delivered.consumer_seq).toBe(seen.length);
    expect(info.num_pending).toBe(total - seen.length);
  });

  it('holds no more than its pull size while the handler lags behind a backlog', async () => {
    // A stage behind its stream (its database slow, its next stream away) takes what it can
    // work on, not all the server would hand out: the rest stays at the server, where no ack
    // wait runs out on it and another replica can have it.
    const total = 300;
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        publisher.publish('iot.raw.v1.behind.d1', `b${i}`, { msgId: `behind-${i}` }),
      ),
    );
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const seen: string[] = [];
    // Batches of 16, one at a time: a pull size of 32 (one batch in progress, one filling).
    const { sut } = newTestService('behind', async (p) => {
      await gate;
      seen.push(new TextDecoder().decode(p));
    });
    await sut.start();
    const jsm = await jetstreamManager(nc);
    const info = () => jsm.consumers.info('TELEMETRY_RAW_V1', 'test-behind');
    let held: Awaited<ReturnType<typeof info>>;
    try {
      await waitFor('the first deliveries', async () => (await info()).delivered.consumer_seq > 0, 10_000);
      await sleep(500);
      held = await info();
    } finally {
      open();
    }
    await waitFor('the whole backlog', () => seen.length >= total, 20_000);
    await sut.stop();
    expect(held.delivered.consumer_seq).toBeLessThanOrEqual(32);
    expect(held.num_pending).toBeGreaterThanOrEqual(total - 32);
    expect(new Set(seen).size).toBe(total);
    expect(seen).toHaveLength(total);
  });

  it('stops at once while the server is away, without waiting out a request to it', async () => {
    // A pod told to stop during a NATS restart: its pull ended with "server shutdown", and
    // the loop's request to recreate the consumer waits for its timeout (5 s) meanwhile.
    const own = await startNats();
    const ownNc = await connectNats({ servers: own.urls, name: 'consumer-away', logger });
    try {
      await ensureAllStreams(ownNc, { replicas: 1 });
      const sut = new ConsumerRunner<Uint8Array>({
        nc: ownNc,
        js: jetstream(ownNc),
        contract: { ...Consumers.demux, durable: 'test-away', filterSubjects: ['iot.raw.v1.away.>'] },
        decoder: 'bytes',
        handler: { kind: 'message', fn: async () => undefined },
        publisher: new JetStreamPublisher(ownNc, logger),
        logger,
        metrics: new IotMetrics('test'),
        batchSize: 16,
      });
      await sut.start();
      await waitFor('the runner to pull', () => sut.isAttached, 10_000);
      await own.stop();
      await sleep(500);
      // Half the request timeout: a stop that waited for the request would still be waiting.
      const first = await Promise.race([
        sut.stop().then(() => 'stopped'),
        sleep(2_500).then(() => 'still waiting'),
      ]);
      expect(first).toBe('stopped');
    } finally {
      await ownNc.close().catch(() => undefined);
      await own.stop();
    }
  });

  it('tells the server it is still working on a batch slower than the ack wait, so it is not redelivered', async () => {
    const deliveries: number[] = [];
    // The test contract's ack wait is 5 s; this handler takes 7.
    const { sut } = newTestService('slow', async (_p, meta) => {
      deliveries.push(meta.deliveryCount);
      await new Promise((r) => setTimeout(r, 7_000));
    });
    await sut.start();
    await publisher.publish('iot.raw.v1.slow.d1', 'x', { msgId: 'slow-1' });
    await waitFor('the delivery', () => deliveries.length === 1, 10_000);
    await sut.stop();
    expect(deliveries).toEqual([1]);
    const info = await (await jetstreamManager(nc)).consumers.info('TELEMETRY_RAW_V1', 'test-slow');
    expect([info.num_ack_pending, info.num_redelivered]).toEqual([0, 0]);
  }, 30_000);

  it('gives the handler the headers that were published, read from the wire bytes as nats.js reads them', async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await publisher.publish('iot.raw.v1.hdrs.d1', '{}', {
      msgId: 'hdrs-1',
      traceparent,
      headers: {
        [Headers.tenant]: 'hdrs',
        [Headers.device]: 'd1',
        [Headers.sourceTopic]: 'devices/d1/telemetry',
      },
    });
    const metas: MessageMeta[] = [];
    const { sut } = newTestService('hdrs', async (_p, meta) => void metas.push(meta));
    await sut.start();
    await waitFor('the delivery', () => metas.length === 1, 10_000);
    await sut.stop();
    expect([metas[0]!.tenant, metas[0]!.device, metas[0]!.msgId, metas[0]!.traceparent]).toEqual([
      'hdrs',
      'd1',
      'hdrs-1',
      traceparent,
    ]);
    expect(metas[0]!.header(Headers.sourceTopic)).toBe('devices/d1/telemetry');
    // Read from the reply subject on demand, after the message was settled.
    expect([metas[0]!.deliveryCount, metas[0]!.streamSequence > 0]).toEqual([1, true]);

    // The same message through nats.js's own header decoding gives the same record, and the
    // wire bytes receivedHeaders reads are where it expects them (else it falls back, slower).
    const ordered = await js.consumers.get('TELEMETRY_RAW_V1', { filter_subjects: 'iot.raw.v1.hdrs.>' });
    const m = await ordered.next({ expires: 5_000 });
    expect(m).not.toBeNull();
    expect((m as unknown as { msg: { _rdata: unknown } }).msg._rdata).toBeInstanceOf(Uint8Array);
    expect(receivedHeaders(m!)).toEqual(headerRecord(m!.headers));
    expect(Object.keys(receivedHeaders(m!))).toHaveLength(5);
  });

  // A stream whose limits discard its oldest messages drops them whether a consumer has had
  // them or not, and nats-server then counts the dropped ones in no consumer's pending: the
  // lag reads 0 while readings are lost. The runner reports how much of the stream's byte
  // limit its backlog fills, so that an alert can say so before (and while) it happens. The
  // normalized stream, which no other test here uses, is shrunk to 64 KiB to be overrun.
  it('reads the share of the limit a stalled consumer has not had, 1 once the stream discards it, 0 when caught up', async () => {
    const KIB = 1024;
    const jsm = await jetstreamManager(nc);
    const { config } = await jsm.streams.info('TELEMETRY_NORMALIZED_V1');
    await jsm.streams.update('TELEMETRY_NORMALIZED_V1', { ...config, max_bytes: 64 * KIB });
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
      js,
      contract,
      decoder: 'bytes',
      handler: { kind: 'message', fn: () => gate },
      publisher,
      logger,
      metrics,
      batchSize: 8,
      lagIntervalMs: 100,
    });
    const ratio = async () =>
      (await metrics.consumerBacklogRatio.get()).values.find((v) => v.labels.consumer === 'test-backlog')
        ?.value ?? -1;
    const publish = async (from: number, to: number) => {
      for (let i = from; i < to; i++)
        await js.publish('iot.normalized.v1.t1.d1', 'x'.repeat(KIB), { msgID: `m${i}` });
    };
    await sut.start();
    try {
      // 40 KiB in a 64 KiB stream, none processed: 16 of the 40 with the stalled handler,
      // unacknowledged, the rest not delivered.
      await publish(0, 40);
      await waitFor(
        'a backlog ratio between 0 and 1',
        async () => (await ratio()) > 0.55 && (await ratio()) < 0.75,
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

  const KIB = 1024;

  /**
   * A stage on its own tenant's raw messages that publishes each as 1 KiB to the normalized
   * stream (shrunk to 64 KiB and purged), held back for a consumer `<tag>-next` that reads
   * them and is created stalled; `sent(n)` puts n raw messages in, numbered from 0. The stage
   * works 25 ms a message and checks every 100 ms unless told otherwise.
   */
  async function heldBackStage(tag: string, { workMs = 25, lagIntervalMs = 100, batchSize = 1 } = {}) {
    const jsm = await jetstreamManager(nc);
    const { config } = await jsm.streams.info('TELEMETRY_NORMALIZED_V1');
    await jsm.streams.update('TELEMETRY_NORMALIZED_V1', { ...config, max_bytes: 64 * KIB });
    await jsm.streams.purge('TELEMETRY_NORMALIZED_V1');
    const firstSeq = (await jsm.streams.info('TELEMETRY_NORMALIZED_V1')).state.first_seq;
    const next: ConsumerContract = {
      ...Consumers.tsdbWriter,
      durable: `test-${tag}-next`,
      filterSubjects: [`iot.normalized.v1.${tag}.>`],
    };
    await ensureConsumer(jsm, next);
    const metrics = new IotMetrics('test');
    const sut = new ConsumerRunner<Uint8Array>({
      nc,
      js,
      contract: { ...Consumers.demux, durable: `test-${tag}`, filterSubjects: [`iot.raw.v1.${tag}.>`] },
      decoder: 'bytes',
      handler: {
        kind: 'message',
        fn: async (payload) => {
          // A stage's work, one message at a time (by default 40/s): the hold, at 16 KiB,
          // comes long before 64, even with the checks (every 100 ms) slowed by a busy machine.
          if (workMs > 0) await sleep(workMs);
          const id = new TextDecoder().decode(payload);
          await js.publish(`iot.normalized.v1.${tag}.d1`, id.padEnd(KIB, ' '), {
            msgID: `${tag}-next-${id}`,
          });
        },
      },
      publisher,
      logger,
      metrics,
      batchSize,
      lagIntervalMs,
      holdBackFor: { consumer: next, above: 0.25, below: 0.2 },
    });
    return {
      sut,
      jsm,
      firstSeq,
      heldBack: async () =>
        (await metrics.consumerHeldBack.get()).values.find((v) => v.labels.consumer === `test-${tag}`)?.value,
      send: async (n: number) => {
        for (let i = 0; i < n; i++)
          await js.publish(`iot.raw.v1.${tag}.d1`, String(i), { msgID: `${tag}-${i}` });
      },
    };
  }

  // Backpressure: a stage whose next stage is behind stops taking messages before the next
  // stream's limits discard any, and goes on once it caught up. The next stream (normalized,
  // 64 KiB) holds about 60 of the 120 messages the stage publishes; the next stage reads
  // nothing until the stage is held back. Without the hold, half of them would be discarded.
  it('holds back while the next stage is behind, so its stream discards nothing, and goes on when it catches up', async () => {
    const N = 120;
    const { sut, jsm, firstSeq, heldBack, send } = await heldBackStage('hold');
    await send(N);
    expect(await heldBack()).toBe(0);
    await sut.start();
    const seen = new Set<string>();
    try {
      await waitFor('the stage held back', async () => (await heldBack()) === 1, 10_000);
      // Long enough for a stage not held back to publish all 120 (40/s) and overrun the stream.
      await sleep(3_500);
      const normalized = await jsm.streams.info('TELEMETRY_NORMALIZED_V1');
      expect(normalized.state.first_seq).toBe(firstSeq); // nothing discarded
      expect(normalized.state.messages).toBeLessThan(N * 0.55);
      // The rest waits, kept, in the stage's own stream.
      expect((await jsm.consumers.info('TELEMETRY_RAW_V1', 'test-hold')).num_pending).toBeGreaterThan(
        N * 0.4,
      );

      const reader = await (
        await js.consumers.get('TELEMETRY_NORMALIZED_V1', 'test-hold-next')
      ).consume({
        callback: (m) => {
          seen.add(new TextDecoder().decode(m.data).trim());
          m.ack();
        },
      });
      try {
        await waitFor(`all ${N} messages at the next stage`, async () => seen.size === N, 20_000);
      } finally {
        await reader.close();
      }
      await waitFor('the stage going on', async () => (await heldBack()) === 0, 5_000);
    } finally {
      await sut.stop();
    }
    expect([...seen].map(Number).sort((a, b) => a - b)).toEqual([...Array(N).keys()]);
  });

  // Between two checks (here 1 s apart) a stage catching up could put more into the next
  // stream than it holds. The next stage retries its first message after 3 s (its database
  // just back, say); the stage publishes 300 KiB meanwhile into a stream of 64 KiB, whose
  // limits would discard that message before its retry. The stage reads the next stage's
  // backlog again whenever it has taken what the last read allowed, and holds back.
  it('puts no more into the next stream between two checks than it has room for, so a message waiting to be retried is kept', async () => {
    const N = 300;
    const { sut, heldBack, send } = await heldBackStage('burst', {
      workMs: 0,
      lagIntervalMs: 1_000,
      batchSize: 16,
    });
    await send(N);
    const seen = new Set<string>();
    let retried = false;
    let wasHeld = false;
    const reader = await (
      await js.consumers.get('TELEMETRY_NORMALIZED_V1', 'test-burst-next')
    ).consume({
      callback: (m) => {
        const id = new TextDecoder().decode(m.data).trim();
        if (id === '0' && !retried) {
          retried = true;
          return m.nak(3_000);
        }
        seen.add(id);
        m.ack();
      },
    });
    await sut.start();
    try {
      const all = async () => {
        if ((await heldBack()) === 1) wasHeld = true;
        return seen.size === N;
      };
      await waitFor(`all ${N} messages at the next stage`, all, 20_000).catch((e: Error) => {
        const missing = [...Array(N).keys()].filter((i) => !seen.has(String(i)));
        throw new Error(`${e.message}; missing: ${missing.join(', ')}`);
      });
    } finally {
      await reader.close();
      await sut.stop();
    }
    expect(retried).toBe(true);
    // It waited for the retry, held back, and went on after it.
    expect(wasHeld).toBe(true);
    expect([...seen].map(Number).sort((a, b) => a - b)).toEqual([...Array(N).keys()]);
  });

  // A next stage removed for good (its consumer deleted) must not hold the stage back forever.
  // And one started while the next stage is already behind holds back from the start, ready.
  it('starts held back, ready, when the next stage is behind, and goes on when that consumer is deleted', async () => {
    const { sut, jsm, heldBack, send } = await heldBackStage('gone');
    for (let i = 0; i < 40; i++)
      await js.publish('iot.normalized.v1.gone.d1', 'x'.repeat(KIB), { msgID: `gone-before-${i}` });
    await send(60);
    await sut.start();
    try {
      await waitFor('the stage held back', async () => (await heldBack()) === 1, 10_000);
      await waitFor('the stage ready (the consumers readiness check)', () => sut.isAttached, 5_000);
      await sleep(300);
      const raw = await jsm.consumers.info('TELEMETRY_RAW_V1', 'test-gone');
      expect(raw.num_pending).toBe(60); // nothing taken
      await jsm.consumers.delete('TELEMETRY_NORMALIZED_V1', 'test-gone-next');
      await waitFor('the stage going on', async () => (await heldBack()) === 0, 5_000);
      await waitFor(
        'every message taken',
        async () => {
          const info = await jsm.consumers.info('TELEMETRY_RAW_V1', 'test-gone');
          return info.num_pending === 0 && info.num_ack_pending === 0;
        },
        10_000,
      );
    } finally {
      await sut.stop();
    }
  });
});
