import { DlqReasons, type DlqReason, PayloadValidationError } from '@iot/contracts';

/** A failure that may pass: the message is nak'd with backoff and delivered again. */
export class RetryableError extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'RetryableError';
  }
}

/** A failure no retry will mend (bad payload, unknown device): the message goes to the DLQ. */
export class PermanentError extends Error {
  constructor(
    readonly reason: DlqReason,
    message: string,
  ) {
    super(message);
    this.name = 'PermanentError';
  }
}

export type Settlement =
  | { kind: 'ack' }
  | { kind: 'nak'; delayMs: number; error: unknown }
  | { kind: 'dlq'; reason: DlqReason; detail: string };

/** The settlement of a message handled without error: one object for all of them. */
export const ACK: Settlement = Object.freeze({ kind: 'ack' });

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000 };

/** Exponential in the delivery count, capped: 0.5 s, 1 s, 2 s ... 30 s. */
export function backoffDelay(deliveryCount: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  const exp = policy.initialMs * 2 ** Math.max(0, deliveryCount - 1);
  return Math.min(policy.maxMs, exp);
}

/**
 * The settlement rule, in one place. Return: ack. Permanent error: DLQ. Any other error is
 * taken as retryable (never term on a first surprise): nak with backoff, until the last
 * delivery, which goes to the DLQ with the error as its detail.
 */
export function settle(
  error: unknown,
  deliveryCount: number,
  maxDeliver: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
): Settlement {
  if (error === undefined) return ACK;
  if (error instanceof PermanentError) return { kind: 'dlq', reason: error.reason, detail: error.message };
  if (error instanceof PayloadValidationError)
    return { kind: 'dlq', reason: DlqReasons.invalidPayload, detail: error.message };
  if (maxDeliver > 0 && deliveryCount >= maxDeliver) {
    const detail = `gave up after ${deliveryCount} deliveries: ${error instanceof Error ? error.message : String(error)}`;
    return { kind: 'dlq', reason: DlqReasons.maxDeliveries, detail };
  }
  return { kind: 'nak', delayMs: backoffDelay(deliveryCount, policy), error };
}
