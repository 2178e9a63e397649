import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import {
  AckPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type Consumer,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { createInbox, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import mqtt from 'mqtt';
import { TELEMETRY_DUPLICATE_WINDOW_MS } from '@iot/contracts';
import { OutgoingHeaders } from '@iot/messaging';
import { postgresBinDir, removeDir, tempDir } from '@iot/testing';
import { SeriesIds } from '@iot/tsdb-writer-data-access';
import { Client } from 'pg';
import {
  BENCH_METRICS,
  BENCH_TENANT,
  benchDevices,
  canonicalMessage,
  METRICS_PER_MESSAGE,
  mqttFlood,
} from './load';
import type { BenchServers } from './servers';

const STREAM = 'BENCH_BASELINE';
const encoder = new TextEncoder();
const RELAY_STREAM = 'BENCH_RELAY';

/**
 * What the servers alone can do on this machine, now: each figure is the ceiling a stage's
 * figure is read against. Measured from this process, as the services would use them.
 */
export interface Baselines {
  /** JetStream publishes per second with acks counted, `window` outstanding (a bridge's best). */
  js_publish: number;
  /** Messages per second fetched in batches and acked from a pull consumer (a worker's best). */
  js_consume_ack: number;
  /**
   * Messages per second consumed, republished to a second stream with acks counted, and acked
   * once republished: the hops of demux and the normalizer with no work in between.
   */
  js_relay: number;
  /** MQTT QoS 1 messages per second from devices to one subscriber through mosquitto alone. */
  mqtt_qos1: number;
  /** Rows per second of `psql \copy` into the telemetry table (the writer's best). */
  pg_copy_rows: number;
}

/** A new stream of the same kind as TELEMETRY_RAW_V1: file storage, a duplicate window. */
async function freshStream(jsm: JetStreamManager, name: string, subject: string): Promise<void> {
  await jsm.streams.delete(name).catch(() => undefined);
  await jsm.streams.add({
    name,
    subjects: [subject],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    // As the telemetry streams: the duplicate window costs the server per message id held.
    duplicate_window: TELEMETRY_DUPLICATE_WINDOW_MS * 1_000_000,
  });
}

/** A durable pull consumer on the baseline stream, acked message by message. */
async function addBaselineConsumer(jsm: JetStreamManager, durable: string): Promise<void> {
  await jsm.consumers.add(STREAM, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 10_000,
  });
}

/** Acks are fire-and-forget: waits until the server has every one and nothing is pending. */
async function untilAllAcked(jsm: JetStreamManager, durable: string): Promise<void> {
  for (;;) {
    const info = await jsm.consumers.info(STREAM, durable);
    if (info.num_ack_pending === 0 && info.num_pending === 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The headers the bridge sets, so a baseline message is the size of a pipeline message. */
function bridgeHeaders(device: string, msgId: string): OutgoingHeaders {
  return new OutgoingHeaders({
    'iot-source-topic': `devices/${device}/telemetry`,
    'iot-received-at': String(Date.now()),
    'iot-device': device,
    'iot-tenant': BENCH_TENANT,
    'iot-model': 'generic',
    'Nats-Msg-Id': msgId,
  });
}

/**
 * JetStream publishes as cheap as a client can make them: plain `publish` with a reply
 * subject under one inbox subscription, where the stream's acks are counted (Go's
 * `PublishAsync`). nats.js's `js.publish` costs the client 40-55 µs a message (a request, a
 * timer and a promise each; measured 2026-12-02), so a baseline built on it measured nats.js,
 * at about half of what the server takes.
 */
class RawPublisher {
  private readonly inbox = `${createInbox()}.`;
  private readonly waiting = new Map<number, () => void>();
  private next = 0;
  private readonly sub: Subscription;
  private refused: Error | undefined;

  constructor(private readonly nc: NatsConnection) {
    this.sub = nc.subscribe(`${this.inbox}*`, {
      callback: (err, m) => {
        if (err) return;
        if (m.headers?.hasError)
          this.refused ??= new Error(
            `a baseline publish was refused: ${m.headers.code} ${m.headers.description}`,
          );
        const id = Number(m.subject.slice(this.inbox.length));
        const done = this.waiting.get(id);
        this.waiting.delete(id);
        done?.();
      },
    });
  }

  /** Publishes; `acked` runs when the stream holds the message. */
  send(
    subject: string,
    data: Uint8Array,
    headers: OutgoingHeaders | MsgHdrs | undefined,
    acked: () => void,
  ): void {
    const id = ++this.next;
    this.waiting.set(id, acked);
    this.nc.publish(subject, data, {
      reply: this.inbox + id,
      headers: headers instanceof OutgoingHeaders ? headers.asMsgHdrs() : headers,
    });
  }

  /** Throws if the stream refused a publish: the figure would count messages it does not hold. */
  close(): void {
    this.sub.unsubscribe();
    if (this.refused) throw this.refused;
  }
}

/**
 * `n` publishes with acks counted, `window` awaiting their ack at any time: the services'
 * publisher allows 1,024 (`maxInFlight`). The figure rises with the window (2026-12-02: 64
 * → 34,000-50,000 msg/s, 256 → 59,000-66,000, 1,024 → 73,000-87,000).
 */
export async function jsPublishBaseline(s: BenchServers, n: number, window = 1024): Promise<number> {
  const jsm = await jetstreamManager(s.nc);
  await freshStream(jsm, STREAM, 'bench.baseline.>');
  const devices = benchDevices(100);
  const publisher = new RawPublisher(s.nc);
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    let sent = 0;
    let acked = 0;
    const sendOne = () => {
      const i = sent++;
      const device = devices[i % devices.length]!;
      publisher.send(
        `bench.baseline.${BENCH_TENANT}.${device}`,
        encoder.encode(canonicalMessage(Date.now(), i)),
        bridgeHeaders(device, `${device}:${i}`),
        onAck,
      );
    };
    const onAck = () => {
      if (++acked === n) resolve();
      else if (sent < n) sendOne();
    };
    while (sent < Math.min(window, n)) sendOne();
  });
  const rate = (n * 1000) / (performance.now() - t0);
  publisher.close();
  return rate;
}

/**
 * Consumes the baseline stream and republishes every message unchanged to a second stream
 * (its headers, Nats-Msg-Id with them, so the second stream deduplicates too), acking each
 * once its copy is held: the hops of demux and the normalizer with no work between.
 */
export async function jsRelayBaseline(s: BenchServers, n: number, batch = 500): Promise<number> {
  const jsm = await jetstreamManager(s.nc);
  await freshStream(jsm, RELAY_STREAM, 'bench.relay.>');
  await addBaselineConsumer(jsm, 'bench-relay');
  const consumer = await jetstream(s.nc).consumers.get(STREAM, 'bench-relay');
  const publisher = new RawPublisher(s.nc);
  const t0 = performance.now();
  await consumeAll(consumer, n, batch, (m, done) => {
    m.json(); // a worker at least parses what it gets
    publisher.send(m.subject.replace('bench.baseline.', 'bench.relay.'), m.data, m.headers, () => {
      m.ack();
      done();
    });
  });
  await untilAllAcked(jsm, 'bench-relay');
  const rate = (n * 1000) / (performance.now() - t0);
  publisher.close();
  await jsm.consumers.delete(STREAM, 'bench-relay');
  await jsm.streams.delete(RELAY_STREAM);
  return rate;
}

/** Consumes and acks `n` messages in pulls of `batch` (a worker's best). */
export async function jsConsumeBaseline(s: BenchServers, n: number, batch = 500): Promise<number> {
  const jsm = await jetstreamManager(s.nc);
  await addBaselineConsumer(jsm, 'bench-consume');
  const consumer = await jetstream(s.nc).consumers.get(STREAM, 'bench-consume');
  const t0 = performance.now();
  await consumeAll(consumer, n, batch, (m, done) => {
    m.json(); // a worker at least parses what it gets
    m.ack();
    done();
  });
  await untilAllAcked(jsm, 'bench-consume');
  const rate = (n * 1000) / (performance.now() - t0);
  await jsm.streams.delete(STREAM);
  return rate;
}

/**
 * Runs `handle` on each of the first `n` messages, resolving once `done` was called for all.
 * Messages come to a callback, so the acks sent while nats.js hands over one read leave in
 * one write; `for await` over the messages resumes in a new microtask per message, and nats.js
 * flushes each ack on its own (one write and one server read per ack: half the rate, measured).
 */
async function consumeAll(
  consumer: Consumer,
  n: number,
  batch: number,
  handle: (m: JsMsg, done: () => void) => void,
): Promise<void> {
  let seen = 0;
  let finished = 0;
  let resolve: () => void = () => undefined;
  const all = new Promise<void>((r) => (resolve = r));
  const done = () => {
    if (++finished === n) resolve();
  };
  const messages = await consumer.consume({
    max_messages: batch,
    callback: (m) => {
      if (seen >= n) return; // past the count: left unacked, the stream is deleted after
      seen++;
      handle(m, done);
    },
  });
  await all;
  await messages.close();
}

/** Devices publish at QoS 1 through mosquitto to one shared-subscription subscriber (the bridge's place). */
export async function mqttBaseline(s: BenchServers, n: number, publishers = 20): Promise<number> {
  const sub = await mqtt.connectAsync(s.mqtt.url, { clientId: 'bench-sub', clean: true, protocolVersion: 5 });
  let received = 0;
  let done: () => void = () => undefined;
  const all = new Promise<void>((r) => (done = r));
  sub.on('message', () => {
    if (++received === n) done();
  });
  await sub.subscribeAsync('$share/bench/devices/+/telemetry', { qos: 1 });
  const t0 = performance.now();
  await mqttFlood(
    s.mqtt.url,
    benchDevices(publishers).map((d) => `${d}-mqtt`),
    n,
  );
  await all;
  const rate = (n * 1000) / (performance.now() - t0);
  await sub.endAsync();
  return rate;
}

/** `psql \copy` of `messages` × 5 rows into the telemetry table (its points); rows per second. */
export async function pgCopyBaseline(s: BenchServers, messages: number): Promise<number> {
  const dir = tempDir('bench-copy');
  try {
    const file = join(dir, 'rows.csv');
    const out = createWriteStream(file);
    const devices = benchDevices(100).map((d) => `copy-${d}`);
    // The series numbered first, as a running writer has them (the writer's own numbering).
    const ids = new SeriesIds();
    const pg = new Client({ connectionString: s.pg.url });
    await pg.connect();
    try {
      await ids.resolve(
        pg,
        devices.map((device) => ({
          tenant: BENCH_TENANT,
          device,
          messageId: device,
          ts: 0,
          receivedAt: 0,
          points: BENCH_METRICS.map((metric) => ({ metric, value: 0, unit: '1', quality: 'good' as const })),
        })),
      );
    } finally {
      await pg.end();
    }
    const series = (device: string, metric: string) => ids.id(BENCH_TENANT, device, metric, '1');
    const base = Date.now() - 3_600_000;
    const now = new Date().toISOString();
    for (let i = 0; i < messages; i++) {
      const ts = new Date(base + Math.floor(i / devices.length)).toISOString();
      const device = devices[i % devices.length]!;
      let chunk = '';
      for (const [k, m] of BENCH_METRICS.entries())
        chunk += `${series(device, m)},${ts},${20 + k + (i % 7)},good,${now}\n`;
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((r) => out.end(() => r()));
    const t0 = performance.now();
    execFileSync(join(postgresBinDir(), 'psql'), [
      s.pg.url,
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      `\\copy telemetry_points (series_id, ts, value, quality, received_at) FROM '${file}' WITH (FORMAT csv)`,
    ]);
    return (messages * METRICS_PER_MESSAGE * 1000) / (performance.now() - t0);
  } finally {
    removeDir(dir);
  }
}

export type JsBaselines = Pick<Baselines, 'js_publish' | 'js_consume_ack' | 'js_relay'>;

/** The three JetStream baselines (publish fills the stream the other two read). */
export async function measureJsBaselines(s: BenchServers, n: number): Promise<JsBaselines> {
  const js_publish = await jsPublishBaseline(s, n);
  const js_relay = await jsRelayBaseline(s, n);
  const js_consume_ack = await jsConsumeBaseline(s, n); // last on the baseline stream: deletes it
  return { js_publish, js_consume_ack, js_relay };
}

export async function measureBaselines(s: BenchServers, n: number): Promise<Baselines> {
  const js = await measureJsBaselines(s, n);
  const mqtt_qos1 = await mqttBaseline(s, n);
  const pg_copy_rows = await pgCopyBaseline(s, n);
  return { ...js, mqtt_qos1, pg_copy_rows };
}
