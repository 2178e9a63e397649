import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { Headers, Subjects, type DlqReason } from '@iot/contracts';
import { injectTraceContext, type Logger } from '@iot/observability';
import { RetryableError } from './errors';

export interface PublishOptions {
  /** Becomes `Nats-Msg-Id`: the stream drops a repeat within its duplicate window. */
  msgId: string;
  headers?: Record<string, string>;
  /** The trace this message continues; a new one is started when absent. */
  traceparent?: string;
}

export interface PublisherOptions {
  /** How long to keep retrying one publish (outage, leader election) before giving up. */
  retryForMs?: number;
  /** Per-attempt timeout waiting for the stream's ack. */
  timeoutMs?: number;
  /**
   * The ack window: publishes awaiting their ack at once. Callers publish concurrently
   * (a batch at a time) instead of one round trip each; past the window they wait.
   */
  maxInFlight?: number;
}

const encoder = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Publishes to JetStream and resolves with the stream's ack, i.e. once the message is held.
 * A publish that fails (no responders during a restart, timeout) is retried with the same
 * message id, so a publish that did land and only lost its ack is not stored twice.
 */
export class JetStreamPublisher {
  private readonly retryForMs: number;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private inFlightCount = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly js: JetStreamClient,
    private readonly logger: Logger,
    opts: PublisherOptions = {},
  ) {
    this.retryForMs = opts.retryForMs ?? 30_000;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.maxInFlight = opts.maxInFlight ?? 1_024;
  }

  /** Publishes awaiting their ack right now. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  private async acquire(): Promise<void> {
    if (this.inFlightCount < this.maxInFlight) {
      this.inFlightCount++;
      return;
    }
    // The slot is handed over by release(), so the count never exceeds the window.
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.inFlightCount--;
  }

  async publish(subject: string, data: Uint8Array | string, opts: PublishOptions): Promise<PubAck> {
    const hdrs = natsHeaders();
    for (const [k, v] of Object.entries(opts.headers ?? {})) hdrs.set(k, v);
    injectTraceContext(hdrs, opts.traceparent);
    const payload = typeof data === 'string' ? encoder.encode(data) : data;
    const deadline = Date.now() + this.retryForMs;
    await this.acquire();
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.js.publish(subject, payload, {
            msgID: opts.msgId,
            headers: hdrs,
            timeout: this.timeoutMs,
          });
        } catch (e) {
          if (Date.now() >= deadline || !isTransient(e))
            throw new RetryableError(
              `publish to ${subject} failed after ${attempt} attempt(s): ${String(e)}`,
              e,
            );
          this.logger.debug(
            { subject, attempt, err: String(e) },
            'publish failed, retrying with the same msg id',
          );
          await sleep(Math.min(2_000, 100 * 2 ** Math.min(attempt, 5)));
        }
      }
    } finally {
      this.release();
    }
  }

  publishJson(subject: string, value: unknown, opts: PublishOptions): Promise<PubAck> {
    return this.publish(subject, JSON.stringify(value), opts);
  }

  /** Dead-letters a message: original payload, original headers, and why. */
  publishToDlq(args: {
    stage: string;
    tenant: string;
    originalSubject: string;
    data: Uint8Array;
    originalHeaders?: MsgHdrs | Record<string, string>;
    reason: DlqReason;
    detail: string;
    msgId: string;
  }): Promise<PubAck> {
    const headers: Record<string, string> = {};
    if (args.originalHeaders) {
      if (isMsgHdrs(args.originalHeaders)) {
        for (const key of args.originalHeaders.keys()) headers[key] = args.originalHeaders.get(key);
      } else Object.assign(headers, args.originalHeaders);
    }
    delete headers[Headers.msgId];
    headers[Headers.dlqReason] = args.reason;
    headers[Headers.dlqStage] = args.stage;
    // Header values are single-line; keep the detail readable and bounded.
    headers[Headers.dlqDetail] = args.detail.replace(/[\r\n]+/g, ' ').slice(0, 1024);
    headers[Headers.originalSubject] = args.originalSubject;
    headers[Headers.originalMsgId] = args.msgId;
    return this.publish(Subjects.dlq(args.stage, args.tenant), args.data, {
      msgId: `dlq:${args.stage}:${args.msgId}`,
      headers,
      traceparent: headers[Headers.traceparent],
    });
  }
}

function isMsgHdrs(h: MsgHdrs | Record<string, string>): h is MsgHdrs {
  return typeof (h as MsgHdrs).keys === 'function' && typeof (h as MsgHdrs).get === 'function';
}

function isTransient(e: unknown): boolean {
  const text = `${(e as Error)?.name ?? ''} ${(e as Error)?.message ?? e}`.toLowerCase();
  // Permission or subject errors will not pass with time; everything connection-ish may.
  return !/permission|invalid subject|maximum payload/.test(text);
}
