import { readFileSync } from 'node:fs';
import { Consumers, Headers, SubjectFilters } from '@iot/contracts';
import {
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { sleep, type Pipeline } from '@iot/testing';
import { METRICS_PER_MESSAGE } from './load';

/** What became of every message a simulator recorded (`--record`), counted in points. */
export interface DeliveryCount {
  sent: number;
  acked: number;
  /** Poison messages sent (expected in the DLQ, not in the table). */
  poison: number;
  /** Messages whose five rows are all stored. */
  storedMessages: number;
  lostPoints: number;
  duplicatedPoints: number;
  /** Points stored of poison messages (should be none). */
  poisonStored: number;
  /** The devices' side of the run, from the record (ms); undefined without send times. */
  deviceSide?: DeviceSide;
}

/** Percentiles of a time in ms. */
export interface Spread {
  p50: number;
  p99: number;
  max: number;
}

/** What the devices saw, apart from the pipeline's device-to-commit latency. */
export interface DeviceSide {
  /**
   * From the time a message carries (when it was due) to when the simulator sent it: the
   * simulator's own lag on a busy machine. It counts in the device-to-commit latency; devices
   * on other machines would not add it.
   */
  sendLagMs: Spread;
  /**
   * From sending to the broker's PUBACK, as a device sees it: the broker holds the message
   * (the bridge takes it into JetStream after, and acks the broker then).
   */
  pubackMs: Spread;
  /**
   * The p99 of the send lag in each window of the run, by the time each message was due
   * (when asked for, with the windows' start): says whether a slow window of the latency was
   * the simulator's lag or the platform's.
   */
  sendLagP99ByWindowMs?: Array<number | undefined>;
}

/** Windows of a run: the first starts at `fromMs` (epoch ms), each `widthMs` long. */
export interface Windows {
  fromMs: number;
  widthMs: number;
}

interface Recorded {
  device: string;
  ts: string;
  /** When it left (ms), NaN in a record without the column. */
  sentAt: number;
  /** When its PUBACK came (ms), 0 if none came. */
  ackedAt: number;
  poison: boolean;
}

/** The simulator's `--record` CSV, by its header's column names. */
export function parseRecord(text: string): Recorded[] {
  const [header, ...lines] = text.trim().split('\n');
  const names = (header ?? '').split(',');
  const col = (name: string) => {
    const i = names.indexOf(name);
    if (i < 0 && name !== 'sent_at_ms') throw new Error(`the simulator's record has no column ${name}`);
    return i;
  };
  const [device, messageId, ts, sentAt, ackedAt] = [
    col('device'),
    col('message_id'),
    col('ts_ms'),
    col('sent_at_ms'),
    col('acked_at_ms'),
  ];
  return lines.map((line) => {
    const f = line.split(',');
    return {
      device: f[device]!,
      ts: f[ts]!,
      sentAt: sentAt < 0 ? NaN : Number(f[sentAt]),
      ackedAt: Number(f[ackedAt]),
      poison: f[messageId]!.startsWith('poison-'),
    };
  });
}

/** The median, the 99th percentile (nearest rank) and the largest of `values`. */
export function spread(values: Float64Array): Spread | undefined {
  if (values.length === 0) return undefined;
  const sorted = values.slice().sort();
  const rank = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { p50: rank(0.5), p99: rank(0.99), max: sorted[sorted.length - 1]! };
}

/**
 * How late the simulator sent and how long PUBACKs took, over the recorded messages; with
 * `windows`, also the send lag's p99 in each window (a message due before the first counts in
 * the first).
 */
export function deviceSide(sent: readonly Recorded[], windows?: Windows): DeviceSide | undefined {
  const lag = new Float64Array(sent.length);
  const puback = new Float64Array(sent.length);
  const lagByWindow: number[][] = [];
  let [nLag, nPuback] = [0, 0];
  for (const m of sent) {
    if (Number.isNaN(m.sentAt)) continue;
    const due = Number(m.ts);
    const late = m.sentAt - due;
    lag[nLag++] = late;
    if (m.ackedAt > 0) puback[nPuback++] = m.ackedAt - m.sentAt;
    if (windows) {
      const i = Math.max(0, Math.floor((due - windows.fromMs) / windows.widthMs));
      for (let k = lagByWindow.length; k <= i; k++) lagByWindow.push([]);
      lagByWindow[i]!.push(late);
    }
  }
  const sendLagMs = spread(lag.subarray(0, nLag));
  const pubackMs = spread(puback.subarray(0, nPuback));
  if (!sendLagMs || !pubackMs) return undefined;
  return windows
    ? {
        sendLagMs,
        pubackMs,
        sendLagP99ByWindowMs: lagByWindow.map((w) => spread(Float64Array.from(w))?.p99),
      }
    : { sendLagMs, pubackMs };
}

/**
 * Looks every recorded message up in the table by device and timestamp. A message the broker
 * acknowledged and whose points are not all there is lost; points beyond five of a message,
 * or rows of this tenant's devices that no message explains, are duplicated.
 */
export async function countDelivery(
  p: Pipeline,
  recordFile: string,
  tenant: string,
  windows?: Windows,
): Promise<DeliveryCount> {
  const sent = parseRecord(readFileSync(recordFile, 'utf8'));
  // A loop, not Math.min(...): a 60 s run records 300,000 messages, past the spread's stack limit.
  const firstTs = sent.reduce((min, r) => Math.min(min, Number(r.ts)), Infinity);
  const devices = [...new Set(sent.map((r) => r.device))];
  const stored = await p.pg.query<{ device_id: string; t: string; n: number }>(
    `SELECT device_id, round(extract(epoch FROM ts) * 1000)::bigint::text AS t, count(*)::int AS n
       FROM telemetry WHERE tenant_id = $1 AND device_id = ANY($2) AND ts >= to_timestamp($3 / 1000.0)
      GROUP BY 1, 2`,
    [tenant, devices, firstTs],
  );
  const found = new Map(stored.map((r) => [`${r.device_id}|${r.t}`, r.n]));
  const c: DeliveryCount = {
    sent: sent.length,
    acked: 0,
    poison: 0,
    storedMessages: 0,
    lostPoints: 0,
    duplicatedPoints: 0,
    poisonStored: 0,
    deviceSide: deviceSide(sent, windows),
  };
  for (const m of sent) {
    const key = `${m.device}|${m.ts}`;
    const n = found.get(key) ?? 0;
    found.delete(key);
    const acked = m.ackedAt > 0;
    if (acked) c.acked++;
    if (m.poison) {
      c.poison++;
      c.poisonStored += n;
      continue;
    }
    if (n >= METRICS_PER_MESSAGE) c.storedMessages++;
    c.duplicatedPoints += Math.max(0, n - METRICS_PER_MESSAGE);
    // A message the broker never acknowledged may be missing: its device would send it again.
    if (acked) c.lostPoints += Math.max(0, METRICS_PER_MESSAGE - n);
  }
  for (const n of found.values()) c.duplicatedPoints += n;
  return c;
}

async function withJsm<T>(
  p: Pipeline,
  fn: (jsm: Awaited<ReturnType<typeof jetstreamManager>>) => Promise<T>,
) {
  const nc = await connect({ servers: p.nats.urls, noAsyncTraces: true });
  try {
    return await fn(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

/**
 * Counts the device messages the bridge puts in the raw stream from its start on: one for a
 * message alone, its `iot-pack-size` for a pack (docs/adr/0011), so that what the bridge took
 * reads the same with packs or without. It reads headers only, through an ordered consumer on
 * a connection of its own (nats-server delivers to it what the raw stream takes: a little CPU
 * on the servers, one delivery per pack). A consumer that ends or goes quiet while the stream
 * grows (every server restarted: ./platform chaos) is made again from the next sequence.
 */
export class RawTaken {
  private count = 0;
  /** The last stream sequence counted. */
  private seq: number;
  private messages: ConsumerMessages | undefined;
  private stopped = false;
  private readonly reading: Promise<void>;
  /** The sequence counted at the last check for a quiet consumer, and since when. */
  private lastSeen = { seq: -1, at: Date.now() };

  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    lastSeq: number,
  ) {
    this.seq = lastSeq;
    this.reading = this.read();
  }

  static async start(urls: string[]): Promise<RawTaken> {
    const nc = await connect({
      servers: urls,
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    const jsm = await jetstreamManager(nc);
    return new RawTaken(nc, jsm, (await jsm.streams.info(Consumers.demux.stream)).state.last_seq);
  }

  private async read(): Promise<void> {
    const js = jetstream(this.nc);
    while (!this.stopped) {
      try {
        const consumer = await js.consumers.get(Consumers.demux.stream, {
          filter_subjects: SubjectFilters.raw,
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: this.seq + 1,
          headers_only: true,
        });
        const messages = await consumer.consume();
        this.messages = messages;
        const watch = setInterval(() => void this.restartIfQuiet(messages), 2_000);
        try {
          for await (const m of messages) {
            this.seq = m.seq;
            this.count += Number(m.headers?.get(Headers.packSize) || 1);
          }
        } finally {
          clearInterval(watch);
        }
      } catch {
        /* the servers are away: try again */
      }
      if (!this.stopped) await sleep(250);
    }
  }

  /** Ends the consumer when the stream holds more than it counted and nothing came for a while. */
  private async restartIfQuiet(messages: ConsumerMessages): Promise<void> {
    if (this.seq !== this.lastSeen.seq) {
      this.lastSeen = { seq: this.seq, at: Date.now() };
      return;
    }
    if (Date.now() - this.lastSeen.at < 4_000) return;
    try {
      const last = (await this.jsm.streams.info(Consumers.demux.stream)).state.last_seq;
      if (last > this.seq) await messages.close();
    } catch {
      /* asked again in 2 s */
    }
  }

  /** Device messages in the raw stream since the start. */
  get taken(): number {
    return this.count;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.messages?.close().catch(() => undefined);
    await this.reading.catch(() => undefined);
    await this.nc.close();
  }
}

export function dlqMessages(p: Pipeline): Promise<number> {
  return withJsm(p, async (jsm) => (await jsm.streams.info('DLQ_V1')).state.messages);
}

/** The worker consumers, as their contracts name them and the stream each reads. */
const WORKERS = [Consumers.demux, Consumers.normalizer, Consumers.tsdbWriter];

/**
 * What JetStream holds for each worker consumer: messages not yet delivered plus those
 * delivered and not yet acknowledged.
 */
export interface PipelineBacklog {
  consumers: Record<string, number>;
}

export function pipelineBacklog(p: Pipeline): Promise<PipelineBacklog> {
  return withJsm(p, async (jsm) => {
    const consumers: Record<string, number> = {};
    for (const { stream, durable } of WORKERS) {
      const c = await jsm.consumers.info(stream, durable);
      consumers[durable] = c.num_pending + c.num_ack_pending;
    }
    return { consumers };
  });
}

/**
 * Waits until the bridge has taken `expected` messages into the raw stream (`raw`, counted
 * from before the run) and no consumer has anything pending. Gives up when nothing has moved for
 * `stallMs` (what is missing then is lost) or at `deadline`. Servers may be away meanwhile.
 */
export async function waitDrained(
  p: Pipeline,
  raw: RawTaken,
  expected: number,
  opts: { stallMs?: number; deadline?: number } = {},
): Promise<{ drainedAt: number; complete: boolean }> {
  const stallMs = opts.stallMs ?? 20_000;
  const deadline = opts.deadline ?? Date.now() + 600_000;
  let last = -1;
  let movedAt = Date.now();
  for (;;) {
    try {
      const backlog = await pipelineBacklog(p);
      const taken = raw.taken;
      // No worker consumer has anything pending or unacknowledged.
      const idle = Object.values(backlog.consumers).every((n) => n === 0);
      if (taken >= expected && idle) return { drainedAt: Date.now(), complete: true };
      if (taken !== last) [last, movedAt] = [taken, Date.now()];
      if (Date.now() - movedAt > stallMs && idle) return { drainedAt: Date.now(), complete: false };
    } catch {
      movedAt = Date.now(); // NATS is away: not a stall of the pipeline
    }
    if (Date.now() > deadline) return { drainedAt: Date.now(), complete: false };
    await sleep(100);
  }
}
