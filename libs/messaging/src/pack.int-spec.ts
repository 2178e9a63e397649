import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import {
  Consumers,
  deviceHeaders,
  Headers,
  Subjects,
  Validators,
  type ConsumerContract,
  type NormalizedTelemetry,
} from '@iot/contracts';
import { createLogger, IotMetrics } from '@iot/observability';
import { startNats, waitFor, type NatsHandle } from '@iot/testing';
import { connectNats, type NatsConnection } from './connection';
import { ConsumerRunner, type MessageMeta } from './consumer';
import { PermanentError, RetryableError } from './errors';
import { Packer } from './pack';
import { ensureAllStreams } from './provisioning';
import { JetStreamPublisher } from './publisher';

/**
 * Packs (docs/adr/0011) through a real nats-server: what one turn publishes for a tenant is
 * stored as one message, and the consumer hands each message in it to its handler as if it
 * had come alone, and settles the pack by what became of them.
 */
describe('packs (real nats-server)', () => {
  let nats: NatsHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let publisher: JetStreamPublisher;
  let packer: Packer;
  const logger = createLogger('test', 'silent');

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectNats({ servers: nats.urls, name: 'pack-test', logger });
    await ensureAllStreams(nc, { replicas: 1 });
    js = jetstream(nc);
    publisher = new JetStreamPublisher(nc, logger);
    packer = new Packer(publisher);
  });
  afterAll(async () => {
    publisher?.close();
    await nc?.close();
    await nats?.stop();
  });

  const telemetry = (tenant: string, device: string, i: number): NormalizedTelemetry => ({
    tenant,
    device,
    messageId: `${device}-m${i}`,
    ts: 1_700_000_000_000 + i,
    receivedAt: 1_700_000_000_500 + i,
    points: [{ metric: 'temperature', value: i, unit: 'Cel', quality: 'good' }],
  });

  /** Adds the messages in one turn, as a batch's handlers do, and waits until all are held. */
  function publishInOneTurn(list: NormalizedTelemetry[]): Promise<void[]> {
    return Promise.all(
      list.map((t) =>
        packer.add(t.tenant, Subjects.normalized(t.tenant, t.device), t, {
          msgId: t.messageId,
          headers: deviceHeaders(t.tenant, t.device, t.receivedAt),
        }),
      ),
    );
  }

  async function storedSubjects(tenant: string): Promise<string[]> {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('TELEMETRY_NORMALIZED_V1', {
      subjects_filter: `iot.normalized.v1.${tenant}.>`,
    });
    return Object.entries(info.state.subjects ?? {}).flatMap(([subject, n]) =>
      Array<string>(n).fill(subject),
    );
  }

  function runner(
    tenant: string,
    fn: (payload: NormalizedTelemetry, meta: MessageMeta) => Promise<void>,
    contractChanges: Partial<ConsumerContract> = {},
  ) {
    const contract: ConsumerContract = {
      ...Consumers.tsdbWriter,
      durable: `pack-${tenant}`,
      filterSubjects: [`iot.normalized.v1.${tenant}.>`],
      maxDeliver: 3,
      ackWaitMs: 10_000,
      ...contractChanges,
    };
    const metrics = new IotMetrics('test');
    const sut = new ConsumerRunner<NormalizedTelemetry>({
      nc,
      js,
      contract,
      decoder: Validators.normalizedTelemetry,
      handler: { kind: 'message', fn },
      publisher,
      logger,
      metrics,
      batchSize: 100,
      concurrency: 1,
      lingerMs: 5,
    });
    return { sut, contract };
  }

  /**
   * A runner whose handler waits until `release()`: what it holds meanwhile shows in its
   * consumer's unacknowledged messages (`unacked()`, JetStream messages: packs count once).
   */
  function laggingRunner(tenant: string) {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const counts = { handled: 0 };
    const { sut, contract } = runner(tenant, async () => {
      await gate;
      counts.handled++;
    });
    const unacked = async () =>
      (await (await jetstreamManager(nc)).consumers.info(contract.stream, contract.durable)).num_ack_pending;
    return { sut, contract, release, counts, unacked };
  }

  async function settled(contract: ConsumerContract): Promise<boolean> {
    const info = await (await jetstreamManager(nc)).consumers.info(contract.stream, contract.durable);
    return info.num_ack_pending === 0 && info.num_pending === 0;
  }

  async function dlq(tenant: string) {
    const jsm = await jetstreamManager(nc);
    const subject = `iot.dlq.v1.tsdb-writer.${tenant}`;
    const info = await jsm.streams.info('DLQ_V1', { subjects_filter: subject });
    const out: Array<{ original: string; msgId: string; device: string; reason: string; data: unknown }> = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && seq > 0; seq++) {
      const m = await jsm.streams.getMessage('DLQ_V1', { seq }).catch(() => null);
      if (!m || m.subject !== subject) continue;
      out.push({
        original: m.header.get(Headers.originalSubject),
        msgId: m.header.get(Headers.originalMsgId),
        device: m.header.get(Headers.device),
        reason: m.header.get(Headers.dlqReason),
        data: JSON.parse(new TextDecoder().decode(m.data)),
      });
    }
    return out;
  }

  /**
   * Runs a runner on the tenant's messages until one is in the DLQ and every one is settled;
   * its handler refuses the device `refused` for good (PermanentError) and takes the others.
   * Answers the devices it took, sorted.
   */
  async function untilOneDeadLettered(tenant: string, refused?: string): Promise<string[]> {
    const handled: string[] = [];
    const { sut, contract } = runner(tenant, async (payload) => {
      if (payload.device === refused)
        throw new PermanentError('unknown-device', `device ${refused} is not registered`);
      handled.push(payload.device);
    });
    await sut.start();
    try {
      await waitFor('one DLQ message', async () => (await dlq(tenant)).length === 1, 10_000);
      await waitFor('the pack settled', () => settled(contract), 5_000);
    } finally {
      await sut.stop();
    }
    return handled.sort();
  }

  it("stores a tenant's messages of one turn as one pack, and hands each over with its own subject, id and headers", async () => {
    const a = Array.from({ length: 30 }, (_, i) => telemetry('pa', `d${i % 3}`, i));
    const b = [telemetry('pb', 'solo', 0)];
    await publishInOneTurn([...a, ...b]);
    // One stored message for tenant pa's 30; pb's message was alone in its tenant: as before.
    expect(await storedSubjects('pa')).toEqual(['iot.normalized.v1.pa.~pack']);
    expect(await storedSubjects('pb')).toEqual(['iot.normalized.v1.pb.solo']);

    const seen: Array<{ payload: NormalizedTelemetry; meta: MessageMeta }> = [];
    const { sut, contract } = runner('pa', async (payload, meta) => void seen.push({ payload, meta }));
    await sut.start();
    await waitFor('30 messages', () => seen.length >= 30, 10_000);
    await waitFor('the pack acked', () => settled(contract), 5_000);
    await sut.stop();
    expect(seen.map((s) => s.payload)).toEqual(a);
    const { meta } = seen[4]!;
    expect({
      subject: meta.subject,
      tenant: meta.tenant,
      device: meta.device,
      msgId: meta.msgId,
      receivedAt: meta.receivedAt,
      deliveryCount: meta.deliveryCount,
      traceparent: /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/.test(meta.traceparent ?? ''),
    }).toEqual({
      subject: 'iot.normalized.v1.pa.d1',
      tenant: 'pa',
      device: 'd1',
      msgId: 'd1-m4',
      receivedAt: 1_700_000_000_504,
      deliveryCount: 1,
      traceparent: true,
    });
  });

  it('hands over the messages of a JSON pack, as a stream may still hold them from before MessagePack, beside a new one', async () => {
    const old = [telemetry('pold', 'd0', 0), telemetry('pold', 'd1', 1)];
    // What the writer of a pack did before MessagePack: JSON, no iot-pack-format header.
    const json = JSON.stringify({
      items: old.map((t) => ({
        headers: { ...deviceHeaders(t.tenant, t.device, t.receivedAt), [Headers.msgId]: t.messageId },
        payload: t,
      })),
    });
    await publisher.publish(Subjects.normalizedPack('pold'), json, {
      msgId: 'old-json-pack',
      headers: { [Headers.tenant]: 'pold', [Headers.packSize]: '2' },
    });
    const fresh = [telemetry('pold', 'd2', 2), telemetry('pold', 'd3', 3)];
    await publishInOneTurn(fresh);
    const jsm = await jetstreamManager(nc);
    const last = await jsm.streams.getMessage('TELEMETRY_NORMALIZED_V1', {
      last_by_subj: Subjects.normalizedPack('pold'),
    });
    expect(last?.header.get(Headers.packFormat)).toBe('msgpack');

    const seen: NormalizedTelemetry[] = [];
    const { sut, contract } = runner('pold', async (payload) => void seen.push(payload));
    await sut.start();
    await waitFor('four messages', () => seen.length >= 4, 10_000);
    await waitFor('both packs acked', () => settled(contract), 5_000);
    await sut.stop();
    expect(seen).toEqual([...old, ...fresh]);
    expect(await dlq('pold')).toEqual([]);
  });

  it("stores two tenants' packs of messages with the same ids apart, and the same pack published again once", async () => {
    const list = (tenant: string) => Array.from({ length: 3 }, (_, i) => telemetry(tenant, `d${i}`, i));
    await publishInOneTurn([...list('pt1'), ...list('pt2')]);
    await publishInOneTurn(list('pt1'));
    expect([...(await storedSubjects('pt1')), ...(await storedSubjects('pt2'))]).toEqual([
      'iot.normalized.v1.pt1.~pack',
      'iot.normalized.v1.pt2.~pack',
    ]);
  });

  it('dead-letters the one message of a pack that fails, alone and under its own subject, and acks the rest', async () => {
    const list = Array.from({ length: 10 }, (_, i) => telemetry('pdead', `d${i}`, i));
    await publishInOneTurn(list);
    expect(await untilOneDeadLettered('pdead', 'd3')).toEqual([
      'd0',
      'd1',
      'd2',
      'd4',
      'd5',
      'd6',
      'd7',
      'd8',
      'd9',
    ]);
    expect(await dlq('pdead')).toEqual([
      {
        original: 'iot.normalized.v1.pdead.d3',
        msgId: 'd3-m3',
        device: 'd3',
        reason: 'unknown-device',
        data: list[3],
      },
    ]);
  });

  it('dead-letters a message of a pack that does not match its schema, and hands over the others', async () => {
    const list = Array.from({ length: 4 }, (_, i) => telemetry('pschema', `d${i}`, i));
    const broken = { ...list[2]!, points: 'not a list' } as unknown as NormalizedTelemetry;
    await publishInOneTurn([list[0]!, list[1]!, broken, list[3]!]);
    expect(await untilOneDeadLettered('pschema')).toEqual(['d0', 'd1', 'd3']);
    const [dead] = await dlq('pschema');
    expect([dead!.original, dead!.reason, dead!.data]).toEqual([
      'iot.normalized.v1.pschema.d2',
      'invalid-payload',
      broken,
    ]);
  });

  it('brings the whole pack back when one of its messages is to be retried, and acks it once all pass', async () => {
    const list = Array.from({ length: 5 }, (_, i) => telemetry('pretry', `d${i}`, i));
    await publishInOneTurn(list);
    const calls: string[] = [];
    const { sut, contract } = runner('pretry', async (payload, meta) => {
      calls.push(`${payload.device}#${meta.deliveryCount}`);
      if (payload.device === 'd2' && meta.deliveryCount < 2) throw new RetryableError('database is down');
    });
    await sut.start();
    await waitFor('the second delivery handled', () => calls.length >= 10, 10_000);
    await waitFor('the pack acked', () => settled(contract), 5_000);
    await sut.stop();
    expect(calls.sort()).toEqual(['d0', 'd1', 'd2', 'd3', 'd4'].flatMap((d) => [`${d}#1`, `${d}#2`]).sort());
    expect(await dlq('pretry')).toEqual([]);
  });

  it('holds about its pull size, not a pull size of packs, while its handler lags behind a backlog of packs', async () => {
    // 40 packs of 100 messages, and a runner whose pull size is 200 messages (batch 100, one
    // batch at a time and one more pulled): its first pull asks for 200 JetStream messages.
    for (let p = 0; p < 40; p++)
      await publishInOneTurn(Array.from({ length: 100 }, (_, i) => telemetry('pheld', `d${i}`, p * 100 + i)));
    expect(await storedSubjects('pheld')).toHaveLength(40);
    const { sut, contract, release, counts, unacked } = laggingRunner('pheld');
    await sut.start();
    let held: number;
    try {
      await waitFor('packs delivered', async () => (await unacked()) > 0, 5_000);
      await new Promise((r) => setTimeout(r, 1_000));
      held = await unacked();
    } finally {
      release();
    }
    // Twice the pull size is 4 packs; a few more may be on their way when the pull ends.
    expect(held).toBeLessThanOrEqual(8);
    await waitFor('every message handled', () => counts.handled >= 4_000, 20_000);
    await waitFor('every pack acked', () => settled(contract), 5_000);
    await sut.stop();
  });

  it('ends a pull that asked for single messages when packs come in while its handler lags', async () => {
    // 60 single messages first (a pull then expects single messages: it asks for 140 more),
    // then 30 packs of 100 arriving one by one while the handler is held.
    for (let i = 0; i < 60; i++) await publishInOneTurn([telemetry('plate', `d${i}`, i)]);
    const { sut, contract, release, counts, unacked } = laggingRunner('plate');
    await sut.start();
    let held: number;
    try {
      await waitFor('the single messages delivered', async () => (await unacked()) >= 60, 5_000);
      for (let p = 0; p < 30; p++) {
        await publishInOneTurn(
          Array.from({ length: 100 }, (_, i) => telemetry('plate', `d${i}`, 1_000 + p * 100 + i)),
        );
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 500));
      held = await unacked();
    } finally {
      release();
    }
    // Twice the pull size is 400 messages: the 60 and 4 packs, and what was on its way.
    expect(held).toBeLessThanOrEqual(60 + 8);
    await waitFor('every message handled', () => counts.handled >= 3_060, 20_000);
    await waitFor('every message acked', () => settled(contract), 5_000);
    await sut.stop();
  });

  it('dead-letters a pack that cannot be read, whole, naming its subject', async () => {
    await publisher.publish('iot.normalized.v1.pbad.~pack', '{"items": "none"}', { msgId: 'bad-pack' });
    expect(await untilOneDeadLettered('pbad')).toEqual([]);
    const [dead] = await dlq('pbad');
    expect([dead!.original, dead!.reason, dead!.data]).toEqual([
      'iot.normalized.v1.pbad.~pack',
      'invalid-payload',
      { items: 'none' },
    ]);
  });

  it('carries raw messages in a pack byte for byte, and dead-letters a refused one alone with its own bytes', async () => {
    // What the bridge does (RAW_PACKS): device payloads as they came, JSON or not.
    const payloads = [
      Buffer.from('{"ts":1,"temperature":20}'),
      Buffer.from([0xff, 0x0a, 0x00, 0xc3]), // not UTF-8, a newline inside
      Buffer.from('{"ts":2,"temperature":21}\n'),
    ];
    const rawPacker = new Packer(publisher, Subjects.rawPack);
    await Promise.all(
      payloads.map((data, i) =>
        rawPacker.addBytes('rawp', Subjects.raw('rawp', `d${i}`), data, {
          msgId: `rawp-${i}`,
          headers: deviceHeaders('rawp', `d${i}`, 1_700_000_000_000 + i),
        }),
      ),
    );
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('TELEMETRY_RAW_V1', { subjects_filter: 'iot.raw.v1.rawp.>' });
    expect(info.state.subjects).toEqual({ 'iot.raw.v1.rawp.~pack': 1 });

    const seen: Array<{ hex: string; subject: string; msgId: string; device: string }> = [];
    const contract: ConsumerContract = {
      ...Consumers.demux,
      durable: 'pack-rawp',
      filterSubjects: ['iot.raw.v1.rawp.>'],
      maxDeliver: 3,
      ackWaitMs: 10_000,
    };
    const sut = new ConsumerRunner<Uint8Array>({
      nc,
      js,
      contract,
      decoder: 'bytes',
      handler: {
        kind: 'message',
        fn: async (payload, meta) => {
          seen.push({
            hex: Buffer.from(payload).toString('hex'),
            subject: meta.subject,
            msgId: meta.msgId,
            device: meta.device,
          });
          if (meta.device === 'd1') throw new PermanentError('invalid-payload', 'is not valid UTF-8');
        },
      },
      publisher,
      logger,
      metrics: new IotMetrics('test'),
      batchSize: 100,
      concurrency: 1,
      lingerMs: 5,
    });
    await sut.start();
    try {
      await waitFor('three messages', () => seen.length >= 3, 10_000);
      await waitFor(
        'the pack acked',
        async () => {
          const c = await jsm.consumers.info(contract.stream, contract.durable);
          return c.num_ack_pending === 0 && c.num_pending === 0;
        },
        5_000,
      );
    } finally {
      await sut.stop();
    }
    expect(seen).toEqual(
      payloads.map((data, i) => ({
        hex: data.toString('hex'),
        subject: `iot.raw.v1.rawp.d${i}`,
        msgId: `rawp-${i}`,
        device: `d${i}`,
      })),
    );
    const dead = await jsm.streams.getMessage('DLQ_V1', { last_by_subj: 'iot.dlq.v1.demux.rawp' });
    expect(Buffer.from(dead!.data).toString('hex')).toBe('ff0a00c3');
    expect(dead!.header.get(Headers.originalSubject)).toBe('iot.raw.v1.rawp.d1');
    expect(dead!.header.get(Headers.originalMsgId)).toBe('rawp-1');
  });
});
