import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type StoredMsg,
} from '@nats-io/jetstream';
import type { ConsumerContract } from '@iot/contracts';

/** What the servers say of a durable consumer and its stream (consumer and stream info). */
export interface BacklogSample {
  /** Messages of the consumer's subjects not yet delivered (`num_pending`). */
  pending: number;
  /** Messages delivered and not yet acknowledged (`num_ack_pending`). */
  ackPending: number;
  /** The stream sequence below which every message is acknowledged (`ack_floor.stream_seq`). */
  ackFloorStreamSeq: number;
  /** The stream's first and last sequences, bytes held and byte limit (-1: none). */
  firstSeq: number;
  lastSeq: number;
  bytes: number;
  maxBytes: number;
  /**
   * Sizes in bytes of a few messages past the ack floor (the oldest, one in the middle, the
   * newest). The stream's average stands for each message behind unless these are larger: a
   * backlog of packs (docs/adr/0011) behind small messages already processed would otherwise
   * read far below what it takes.
   */
  behindSizes?: number[];
}

/**
 * The size taken for each message of a stream that holds none yet (nothing to measure): large,
 * so that a stage checks again soon rather than overfill a stream whose messages it cannot
 * size.
 */
export const UNKNOWN_MESSAGE_BYTES = 64 * 1024;

/** The bytes taken for each message behind: the stream's average, or a larger sample. */
function messageBytes(s: BacklogSample): number {
  const held = s.lastSeq - s.firstSeq + 1;
  let size = held > 0 && s.bytes > 0 ? s.bytes / held : UNKNOWN_MESSAGE_BYTES;
  for (const b of s.behindSizes ?? []) if (b > size) size = b;
  return size;
}

/** Messages past the consumer's ack floor still in the stream (0 when it is not behind). */
function behindOf(s: BacklogSample): number {
  if (s.pending + s.ackPending <= 0 || s.lastSeq < s.firstSeq) return 0;
  return s.lastSeq - Math.max(s.ackFloorStreamSeq, s.firstSeq - 1);
}

/**
 * How much of its stream's byte limit a consumer's backlog fills: the stream's messages past
 * the consumer's ack floor (not delivered, or delivered and not acknowledged: a stage whose
 * writes fail holds thousands of those, and one message waiting out a retry delay keeps every
 * later one behind it), each taken at the stream's average size or at the largest of
 * `behindSizes`, as a share of the stream's byte limit. At 1 the stream, whose limits discard
 * the oldest message, is discarding messages the consumer has not processed: readings lost,
 * and nats-server then counts them in no consumer's pending. 0 with nothing pending or
 * unacknowledged (a consumer whose last message is old, with other subjects' messages after
 * it, is not behind) or no byte limit.
 */
export function backlogRatio(s: BacklogSample): number {
  if (s.maxBytes <= 0) return 0;
  return Math.min(1, (behindOf(s) * messageBytes(s)) / s.maxBytes);
}

/**
 * How many more messages the stream may take before the consumer's backlog fills `above` of
 * its byte limit (sizes as `backlogRatio` takes them); Infinity without a byte limit.
 */
export function backlogRoom(s: BacklogSample, above: number): number {
  if (s.maxBytes <= 0) return Infinity;
  return Math.max(0, Math.floor((above * s.maxBytes) / messageBytes(s)) - behindOf(s));
}

/** A stored message's size as its stream counts it, near enough: subject, headers, payload. */
function storedBytes(m: StoredMsg | null): number {
  if (!m) return 0;
  let size = m.subject.length + m.data.length + 16;
  if (m.header) for (const [k, vs] of m.header) for (const v of vs) size += k.length + v.length + 4;
  return size;
}

/** Sizes of the oldest, a middle and the newest message past the ack floor (those still held). */
async function sampleBehind(
  jsm: JetStreamManager,
  stream: string,
  from: number,
  to: number,
): Promise<number[]> {
  if (to < from) return [];
  const seqs = [...new Set([from, Math.floor((from + to) / 2), to])];
  const found = await Promise.all(
    seqs.map((seq) => jsm.streams.getMessage(stream, { seq }).then(storedBytes, () => 0)),
  );
  return found.filter((b) => b > 0);
}

/** The share of its stream's byte limit a durable consumer's backlog fills, and its lag. */
export async function consumerBacklog(
  jsm: JetStreamManager,
  contract: Pick<ConsumerContract, 'stream' | 'durable'>,
): Promise<{ lag: number; ratio: number; sample: BacklogSample }> {
  const [info, stream] = await Promise.all([
    jsm.consumers.info(contract.stream, contract.durable),
    jsm.streams.info(contract.stream),
  ]);
  const sample: BacklogSample = {
    pending: info.num_pending,
    ackPending: info.num_ack_pending,
    ackFloorStreamSeq: info.ack_floor.stream_seq,
    firstSeq: stream.state.first_seq,
    lastSeq: stream.state.last_seq,
    bytes: stream.state.bytes,
    maxBytes: stream.config.max_bytes,
  };
  if (sample.maxBytes > 0 && behindOf(sample) > 0)
    sample.behindSizes = await sampleBehind(
      jsm,
      contract.stream,
      Math.max(sample.ackFloorStreamSeq + 1, sample.firstSeq),
      sample.lastSeq,
    );
  return { lag: info.num_pending + info.num_ack_pending, ratio: backlogRatio(sample), sample };
}

/** Where a `BacklogGate` shuts and opens again. */
export interface BacklogGateOptions {
  /** The durable consumer whose backlog is watched. */
  consumer: Pick<ConsumerContract, 'stream' | 'durable'>;
  /** Shuts when the backlog ratio is above this share of the stream's byte limit... */
  above: number;
  /** ...and opens again once it is below this one. */
  below: number;
}

/**
 * Open while a consumer keeps up; shut while its backlog fills more than `above` of its
 * stream's byte limit (`backlogRatio`), until it is below `below`: what holds a stage back
 * for the next one, and what makes HTTP ingest refuse messages before the raw stream would
 * discard unprocessed ones.
 */
export class BacklogGate {
  /** Whether the watched consumer is too far behind. */
  shut = false;
  /** The ratio the last successful check read. */
  ratio = 0;
  /**
   * What the last successful check read besides: how many more messages the stream may take
   * before the ratio passes halfway from `above` to 1 (`backlogRoom`; Infinity when the
   * consumer or stream is gone, or without a byte limit), and the stream's last sequence
   * then. Past `above`, not up to it: a stage that took all the room would otherwise stop
   * just short of it, held back in effect, with the gate open and saying otherwise.
   */
  room = Infinity;
  lastSeq = 0;
  /** Successful checks so far: a caller sees by it whether `room` is new. */
  checks = 0;

  constructor(readonly o: BacklogGateOptions) {
    const { above, below, consumer } = o;
    if (!(above > 0 && above <= 1 && below >= 0 && below <= above))
      throw new Error(
        `a gate on ${consumer.durable}'s backlog needs 0 < above <= 1 and 0 <= below <= above; it has above ${above}, below ${below}`,
      );
  }

  /**
   * Reads the consumer's backlog and shuts or opens the gate; true when it changed. A
   * consumer or stream that is gone opens it (nothing to wait for, and it may never come
   * back); any other failure (a cluster electing a leader, a timeout) changes nothing until
   * the next check.
   */
  async check(jsm: JetStreamManager): Promise<boolean> {
    try {
      const { ratio, sample } = await consumerBacklog(jsm, this.o.consumer);
      this.ratio = ratio;
      this.room = backlogRoom(sample, (1 + this.o.above) / 2);
      this.lastSeq = sample.lastSeq;
    } catch (e) {
      const gone =
        e instanceof JetStreamApiError &&
        (e.code === JetStreamApiCodes.ConsumerNotFound || e.code === JetStreamApiCodes.StreamNotFound);
      if (!gone) return false;
      this.ratio = 0;
      this.room = Infinity;
    }
    this.checks++;
    const was = this.shut;
    if (!was && this.ratio > this.o.above) this.shut = true;
    else if (was && this.ratio < this.o.below) this.shut = false;
    return this.shut !== was;
  }
}

/** How many messages a stage measures at least before it trusts what it measured. */
const MIN_MEASURED = 16;

/**
 * How many messages a stage held back by the next one (`BacklogGate`) may take before it
 * reads that stage's backlog again. Between the periodic checks (every 5 s) a stage catching
 * up could put more into the next stream than it holds, and the stream's limits would
 * discard its oldest messages, processed or not: a message the next stage is to retry after
 * a delay (its database just back) among them. So a check allows what the next stream has
 * room for (`BacklogGate.room`), in this stage's messages, by how many the next stream gained
 * per message this stage settled between the last two checks (a pack takes many, a gateway's
 * message gives many; other replicas' messages count too, which only allows fewer), less what
 * this stage has taken and not yet settled.
 */
export class CheckBudget {
  /** Messages taken since the last check. */
  taken = 0;
  /** Messages the last check allows (none before the first). */
  allowed = 0;
  /** The next stream's messages per message settled here, as last measured. */
  private outPerIn = 1;
  private lastSeq: number | undefined;
  private settledAtCheck = 0;

  /** Whether the messages allowed are taken: time to check again. */
  get spent(): boolean {
    return this.taken >= this.allowed;
  }

  /** Messages that may still be taken. */
  get left(): number {
    return this.allowed - this.taken;
  }

  /**
   * A check read `room` and the next stream's last sequence; `settled` is the count of
   * messages this stage has settled so far, `held` those it took and has not settled.
   */
  renew(room: number, lastSeq: number, settled: number, held: number): void {
    const settledSince = settled - this.settledAtCheck;
    if (this.lastSeq === undefined || lastSeq < this.lastSeq) {
      // The first check, or the stream started again (purged, recreated): measure from here.
      this.lastSeq = lastSeq;
      this.settledAtCheck = settled;
    } else if (settledSince >= MIN_MEASURED) {
      // Falls at most by half a check: one run of messages that gave nothing (all dead-
      // lettered) does not let the next checks allow far more than the stream holds; and not
      // below one in 256 (a pack holds at most 250). Fewer settled: measured over more checks.
      this.outPerIn = Math.max((lastSeq - this.lastSeq) / settledSince, this.outPerIn / 2, 1 / 256);
      this.lastSeq = lastSeq;
      this.settledAtCheck = settled;
    }
    this.taken = held;
    // At least one: a stage whose gate is open goes on, if slowly (a stream too small for
    // the size taken for messages unknown, say), and the next read sees more.
    this.allowed = room === Infinity ? Infinity : Math.max(1, Math.floor(room / this.outPerIn));
  }
}
