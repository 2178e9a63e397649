import { readFileSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
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
}

interface Recorded {
  device: string;
  ts: string;
  acked: boolean;
  poison: boolean;
}

function readRecord(file: string): Recorded[] {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [device, messageId, ts, ackedAt] = line.split(',');
      return { device: device!, ts: ts!, acked: ackedAt !== '0', poison: messageId!.startsWith('poison-') };
    });
}

/**
 * Looks every recorded message up in the table by device and timestamp. A message the broker
 * acknowledged and whose points are not all there is lost; points beyond five of a message,
 * or rows of this tenant's devices that no message explains, are duplicated.
 */
export async function countDelivery(p: Pipeline, recordFile: string, tenant: string): Promise<DeliveryCount> {
  const sent = readRecord(recordFile);
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
  };
  for (const m of sent) {
    const key = `${m.device}|${m.ts}`;
    const n = found.get(key) ?? 0;
    found.delete(key);
    if (m.acked) c.acked++;
    if (m.poison) {
      c.poison++;
      c.poisonStored += n;
      continue;
    }
    if (n >= METRICS_PER_MESSAGE) c.storedMessages++;
    c.duplicatedPoints += Math.max(0, n - METRICS_PER_MESSAGE);
    // A message the broker never acknowledged may be missing: its device would send it again.
    if (m.acked) c.lostPoints += Math.max(0, METRICS_PER_MESSAGE - n);
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

export function rawMessages(p: Pipeline): Promise<number> {
  return withJsm(p, async (jsm) => (await jsm.streams.info('TELEMETRY_RAW_V1')).state.messages);
}

export function dlqMessages(p: Pipeline): Promise<number> {
  return withJsm(p, async (jsm) => (await jsm.streams.info('DLQ_V1')).state.messages);
}

/** No worker consumer has anything pending or unacknowledged. */
export function pipelineIdle(p: Pipeline): Promise<boolean> {
  return withJsm(p, async (jsm) => {
    for (const [stream, consumer] of [
      ['TELEMETRY_RAW_V1', 'demux'],
      ['TELEMETRY_DECODED_V1', 'normalizer'],
      ['TELEMETRY_NORMALIZED_V1', 'tsdb-writer'],
    ] as const) {
      const c = await jsm.consumers.info(stream, consumer);
      if (c.num_pending > 0 || c.num_ack_pending > 0) return false;
    }
    return true;
  });
}

/**
 * Waits until the bridge has taken `expected` new messages into the raw stream (beyond
 * `rawBefore`) and no consumer has anything pending. Gives up when nothing has moved for
 * `stallMs` (what is missing then is lost) or at `deadline`. Servers may be away meanwhile.
 */
export async function waitDrained(
  p: Pipeline,
  rawBefore: number,
  expected: number,
  opts: { stallMs?: number; deadline?: number } = {},
): Promise<{ drainedAt: number; complete: boolean }> {
  const stallMs = opts.stallMs ?? 20_000;
  const deadline = opts.deadline ?? Date.now() + 600_000;
  let last = -1;
  let movedAt = Date.now();
  for (;;) {
    try {
      const raw = (await rawMessages(p)) - rawBefore;
      const idle = await pipelineIdle(p);
      if (raw >= expected && idle) return { drainedAt: Date.now(), complete: true };
      if (raw !== last) [last, movedAt] = [raw, Date.now()];
      if (Date.now() - movedAt > stallMs && idle) return { drainedAt: Date.now(), complete: false };
    } catch {
      movedAt = Date.now(); // NATS is away: not a stall of the pipeline
    }
    if (Date.now() > deadline) return { drainedAt: Date.now(), complete: false };
    await sleep(100);
  }
}
