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
