import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import {
  AckPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import mqtt from 'mqtt';
import { TELEMETRY_DUPLICATE_WINDOW_MS } from '@iot/contracts';
import { postgresBinDir, removeDir, tempDir } from '@iot/testing';
import {
  BENCH_METRICS,
  BENCH_TENANT,
  benchDevices,
  canonicalMessage,
  METRICS_PER_MESSAGE,
  mqttFlood,
  windowed,
} from './load';
import type { BenchServers } from './servers';

const STREAM = 'BENCH_BASELINE';
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

export async function jsPublishBaseline(s: BenchServers, n: number, window = 256): Promise<number> {
  const jsm = await jetstreamManager(s.nc);
  await freshStream(jsm, STREAM, 'bench.baseline.>');
  const js = jetstream(s.nc);
  const devices = benchDevices(100);
  const t0 = performance.now();
  await windowed(n, window, (i) => {
    const device = devices[i % devices.length]!;
    // The headers the bridge sets, so the message is the same size as in the pipeline.
    const h = natsHeaders();
    h.set('iot-source-topic', `devices/${device}/telemetry`);
    h.set('iot-received-at', String(Date.now()));
    h.set('iot-device', device);
    h.set('iot-tenant', BENCH_TENANT);
    h.set('iot-model', 'generic');
    return js.publish(`bench.baseline.${BENCH_TENANT}.${device}`, canonicalMessage(Date.now(), i), {
      msgID: `${device}:${i}`,
      headers: h,
    });
  });
  return (n * 1000) / (performance.now() - t0);
}

/** Consumes the baseline stream and republishes every message, as demux does, but unchanged. */
export async function jsRelayBaseline(
  s: BenchServers,
  n: number,
  batch = 500,
  window = 256,
): Promise<number> {
  const jsm = await jetstreamManager(s.nc);
  await freshStream(jsm, RELAY_STREAM, 'bench.relay.>');
  await addBaselineConsumer(jsm, 'bench-relay');
  const js = jetstream(s.nc);
  const consumer = await js.consumers.get(STREAM, 'bench-relay');
  const t0 = performance.now();
  let seen = 0;
  const inFlight = new Set<Promise<void>>();
  const messages = await consumer.consume({ max_messages: batch });
  for await (const m of messages) {
    m.json(); // a worker at least parses what it gets
    // The stored headers go along, Nats-Msg-Id with them: the second stream deduplicates too.
    const p: Promise<void> = js
      .publish(m.subject.replace('bench.baseline.', 'bench.relay.'), m.data, { headers: m.headers })
      .then(() => {
        m.ack();
        inFlight.delete(p);
      });
    inFlight.add(p);
    if (inFlight.size >= window) await Promise.race(inFlight);
    if (++seen >= n) break;
  }
  await Promise.all(inFlight);
  await untilAllAcked(jsm, 'bench-relay');
  const rate = (seen * 1000) / (performance.now() - t0);
  await jsm.consumers.delete(STREAM, 'bench-relay');
  await jsm.streams.delete(RELAY_STREAM);
  return rate;
}

export async function jsConsumeBaseline(s: BenchServers, n: number, batch = 500): Promise<number> {
  const jsm = await jetstreamManager(s.nc);
  await addBaselineConsumer(jsm, 'bench-consume');
  const consumer = await jetstream(s.nc).consumers.get(STREAM, 'bench-consume');
  const t0 = performance.now();
  let seen = 0;
  const messages = await consumer.consume({ max_messages: batch });
  for await (const m of messages) {
    m.json(); // a worker at least parses what it gets
    m.ack();
    if (++seen >= n) break;
  }
  await untilAllAcked(jsm, 'bench-consume');
  const rate = (seen * 1000) / (performance.now() - t0);
  await jsm.streams.delete(STREAM);
  return rate;
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

/** `psql \copy` of `messages` × 5 rows into the telemetry table; rows per second. */
export async function pgCopyBaseline(s: BenchServers, messages: number): Promise<number> {
  const dir = tempDir('bench-copy');
  try {
    const file = join(dir, 'rows.csv');
    const out = createWriteStream(file);
    const devices = benchDevices(100);
    const base = Date.now() - 3_600_000;
    const now = new Date().toISOString();
    for (let i = 0; i < messages; i++) {
      const ts = new Date(base + Math.floor(i / devices.length)).toISOString();
      const device = `copy-${devices[i % devices.length]}`;
      let chunk = '';
      for (const [k, m] of BENCH_METRICS.entries())
        chunk += `${BENCH_TENANT},${device},${m},${ts},${20 + k + (i % 7)},1,good,${now}\n`;
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((r) => out.end(() => r()));
    const t0 = performance.now();
    execFileSync(join(postgresBinDir(), 'psql'), [
      s.pg.url,
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      `\\copy telemetry (tenant_id, device_id, metric, ts, value, unit, quality, received_at) FROM '${file}' WITH (FORMAT csv)`,
    ]);
    return (messages * METRICS_PER_MESSAGE * 1000) / (performance.now() - t0);
  } finally {
    removeDir(dir);
  }
}

export async function measureBaselines(s: BenchServers, n: number): Promise<Baselines> {
  const js_publish = await jsPublishBaseline(s, n);
  const js_relay = await jsRelayBaseline(s, n);
  const js_consume_ack = await jsConsumeBaseline(s, n); // last on the baseline stream: deletes it
  const mqtt_qos1 = await mqttBaseline(s, n);
  const pg_copy_rows = await pgCopyBaseline(s, n);
  return { js_publish, js_consume_ack, js_relay, mqtt_qos1, pg_copy_rows };
}
