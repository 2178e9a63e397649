import { PayloadValidationError } from '@iot/contracts';
import { backoffDelay, PermanentError, RetryableError, settle } from './errors';

describe('settle', () => {
  it('acks when the handler returned', () => {
    expect(settle(undefined, 1, 5)).toEqual({ kind: 'ack' });
  });

  it('sends a permanent error to the DLQ on its first delivery, with its reason', () => {
    expect(settle(new PermanentError('unknown-device', 'device x is not registered'), 1, 5)).toEqual({
      kind: 'dlq',
      reason: 'unknown-device',
      detail: 'device x is not registered',
    });
  });

  it('sends a validation error to the DLQ as invalid-payload, naming the field', () => {
    const s = settle(
      new PayloadValidationError('zenthos telemetry', '/timestamp', 'type', 'must be integer'),
      1,
      5,
    );
    expect(s).toMatchObject({ kind: 'dlq', reason: 'invalid-payload' });
    expect(s.kind === 'dlq' && s.detail).toContain('/timestamp');
  });

  it('naks a retryable or unexpected error with growing backoff', () => {
    const first = settle(new RetryableError('db down'), 1, 5);
    const third = settle(new Error('surprise'), 3, 5);
    expect(first).toMatchObject({ kind: 'nak', delayMs: 500 });
    expect(third).toMatchObject({ kind: 'nak', delayMs: 2000 });
  });

  it('sends the last delivery of a failing message to the DLQ', () => {
    const s = settle(new RetryableError('db down'), 5, 5);
    expect(s).toMatchObject({ kind: 'dlq', reason: 'max-deliveries' });
    expect(s.kind === 'dlq' && s.detail).toContain('after 5 deliveries: db down');
  });
});

describe('backoffDelay', () => {
  it('is capped', () => {
    expect(backoffDelay(30)).toBe(30_000);
  });
});
