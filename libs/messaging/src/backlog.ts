import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
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
}

/**
 * How much of its stream's byte limit a consumer's backlog fills: the stream's messages past
 * the consumer's ack floor (not delivered, or delivered and not acknowledged: a stage whose
 * writes fail holds thousands of those), as a share of the stream's messages, times how full
 * the stream is (sizes taken as even). At 1 the stream, whose limits discard the oldest
 * message, is discarding messages the consumer has not processed: readings lost, and
 * nats-server then counts them in no consumer's pending. 0 with nothing pending or
 * unacknowledged (a consumer whose last message is old, with other subjects' messages after
 * it, is not behind) or no byte limit.
 */
export function backlogRatio(s: BacklogSample): number {
  if (s.pending + s.ackPending <= 0 || s.maxBytes <= 0 || s.lastSeq < s.firstSeq) return 0;
  const held = s.lastSeq - s.firstSeq + 1;
  const behind = s.lastSeq - Math.max(s.ackFloorStreamSeq, s.firstSeq - 1);
  return Math.min(1, (behind / held) * (s.bytes / s.maxBytes));
}

/** The share of its stream's byte limit a durable consumer's backlog fills, and its lag. */
export async function consumerBacklog(
  jsm: JetStreamManager,
  contract: Pick<ConsumerContract, 'stream' | 'durable'>,
): Promise<{ lag: number; ratio: number }> {
  const [info, stream] = await Promise.all([
    jsm.consumers.info(contract.stream, contract.durable),
    jsm.streams.info(contract.stream),
  ]);
  return {
    lag: info.num_pending + info.num_ack_pending,
    ratio: backlogRatio({
      pending: info.num_pending,
      ackPending: info.num_ack_pending,
      ackFloorStreamSeq: info.ack_floor.stream_seq,
      firstSeq: stream.state.first_seq,
      lastSeq: stream.state.last_seq,
      bytes: stream.state.bytes,
      maxBytes: stream.config.max_bytes,
    }),
  };
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
      this.ratio = (await consumerBacklog(jsm, this.o.consumer)).ratio;
    } catch (e) {
      const gone =
        e instanceof JetStreamApiError &&
        (e.code === JetStreamApiCodes.ConsumerNotFound || e.code === JetStreamApiCodes.StreamNotFound);
      if (!gone) return false;
      this.ratio = 0;
    }
    const was = this.shut;
    if (!was && this.ratio > this.o.above) this.shut = true;
    else if (was && this.ratio < this.o.below) this.shut = false;
    return this.shut !== was;
  }
}
