import type { PubAck } from '@nats-io/jetstream';
import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import { Headers, Subjects, type DlqReason } from '@iot/contracts';
import { injectTraceContext, type Logger } from '@iot/observability';
import { RetryableError } from './errors';
import { OutgoingHeaders } from './headers';
import { EndOfTurnQueue } from './end-of-turn';

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
  /**
   * How long a publish may wait for others to leave with it in one socket write, in ms; 0
   * (the default): until the end of the event-loop turn. See EndOfTurnQueue.
   */
  lingerMs?: number;
}

const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface PendingAck {
  resolve(ack: PubAck): void;
  reject(e: Error): void;
  deadline: number;
}

interface Outgoing {
  id: number;
  subject: string;
  payload: Uint8Array;
  headers: OutgoingHeaders;
}

/**
 * JetStream publishes with their acks collected on one wildcard inbox, as the Go client's
 * PublishAsync does, instead of a request (a token, a timer, a promise and, in nats.js 3.4,
 * an Error built after every success) per message. One sweep a tenth of a second times out
 * the acks that did not come; the caller retries those with the same message id.
 *
 * Publishes are queued and handed to nats.js together once per event-loop turn (or after
 * `lingerMs`), so that they leave in one socket write. nats.js flushes at the end of each
 * microtask run; the bridge takes one MQTT message per run, so it made one write (and one
 * server read, and one ack write back) per message: writes were half of the bridge's CPU.
 */
class AckInbox {
  private readonly prefix = `${createInbox()}.`;
  private readonly pending = new Map<number, PendingAck>();
  private next = 0;
  private sub?: Subscription;
  private sweeper?: NodeJS.Timeout;
  private readonly queue: EndOfTurnQueue<Outgoing>;

  constructor(
    private readonly nc: NatsConnection,
    lingerMs = 0,
  ) {
    this.queue = new EndOfTurnQueue<Outgoing>((due) => this.flush(due), lingerMs);
  }

  send(subject: string, payload: Uint8Array, headers: OutgoingHeaders, timeoutMs: number): Promise<PubAck> {
    if (!this.sub) {
      this.sub = this.nc.subscribe(`${this.prefix}*`, {
        callback: (err, msg) => {
          if (!err) this.onAck(msg);
        },
      });
    }
    // The sweep runs only while acks are awaited: an idle service is not woken for it.
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), 100);
      this.sweeper.unref();
    }
    const id = ++this.next;
    return new Promise<PubAck>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, deadline: Date.now() + timeoutMs });
      this.queue.push({ id, subject, payload, headers });
    });
  }

  /** Hands the turn's publishes to nats.js in one go: they leave in one write. */
  private flush(due: Outgoing[]): void {
    for (const o of due) {
      if (!this.pending.has(o.id)) continue; // closed, or timed out while queued
      try {
        this.nc.publish(o.subject, o.payload, { headers: o.headers.asMsgHdrs(), reply: this.prefix + o.id });
      } catch (e) {
        const p = this.pending.get(o.id);
        this.pending.delete(o.id);
        p?.reject(e as Error);
      }
    }
  }

  private onAck(msg: Msg): void {
    const id = Number(msg.subject.slice(this.prefix.length));
    const p = this.pending.get(id);
    if (!p) return; // it timed out meanwhile: the retry, with the same message id, gets its own ack
    this.pending.delete(id);
    if (msg.headers?.hasError) {
      // 503: no responders, the stream's subject has no server behind it right now.
      p.reject(
        new Error(
          msg.headers.code === 503
            ? 'no responders'
            : `status ${msg.headers.code} ${msg.headers.description}`,
        ),
      );
      return;
    }
    let ack: {
      stream?: string;
      seq?: number;
      duplicate?: boolean;
      domain?: string;
      error?: { code: number; err_code?: number; description: string };
    };
    try {
      ack = JSON.parse(decoder.decode(msg.data));
    } catch {
      p.reject(new Error('invalid ack response: not JSON'));
      return;
    }
    if (ack.error)
      p.reject(
        new Error(`JetStream error ${ack.error.err_code ?? ack.error.code}: ${ack.error.description}`),
      );
    else if (!ack.stream || typeof ack.seq !== 'number') p.reject(new Error('invalid ack response'));
    else
      p.resolve({
        stream: ack.stream,
        seq: ack.seq,
        duplicate: ack.duplicate === true,
        domain: ack.domain ?? '',
      } as PubAck);
  }

  /** Times out the acks past their deadline; they were added in deadline order. */
  private sweep(): void {
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (p.deadline > now) break;
      this.pending.delete(id);
      p.reject(new Error('timeout'));
    }
    if (this.pending.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    this.queue.clear();
    this.sub?.unsubscribe();
    for (const p of this.pending.values()) p.reject(new Error('publisher closed'));
    this.pending.clear();
  }
}

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

  private readonly acks: AckInbox;

  constructor(
    nc: NatsConnection,
    private readonly logger: Logger,
    opts: PublisherOptions = {},
  ) {
    this.retryForMs = opts.retryForMs ?? 30_000;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.maxInFlight = opts.maxInFlight ?? 1_024;
    this.acks = new AckInbox(nc, opts.lingerMs);
  }

  /** Stops waiting for acks (shutdown, after the consumers have drained). */
  close(): void {
    this.acks.close();
  }

  /** Publishes awaiting their ack right now. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  /**
   * A slot in the window: undefined when one was free (taken at once, without a promise and a
   * microtask per publish), else a promise that release() resolves when it hands one over,
   * so the count never exceeds the window.
   */
  private acquire(): Promise<void> | undefined {
    if (this.inFlightCount < this.maxInFlight) {
      this.inFlightCount++;
      return undefined;
    }
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.inFlightCount--;
  }

  async publish(subject: string, data: Uint8Array | string, opts: PublishOptions): Promise<PubAck> {
    const hdrs = new OutgoingHeaders(opts.headers);
    injectTraceContext(hdrs, opts.traceparent);
    hdrs.set(Headers.msgId, opts.msgId);
    // Buffer.from takes small texts from Node's shared pool; TextEncoder makes a new
    // ArrayBuffer for each: 0.3 against 0.9 µs for a 500-byte message alone, too little to
    // show in `bench stages` (two interleaved pairs, 2026-12-03).
    const payload = typeof data === 'string' ? Buffer.from(data) : data;
    const deadline = Date.now() + this.retryForMs;
    const waitForSlot = this.acquire();
    if (waitForSlot) await waitForSlot;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.acks.send(subject, payload, hdrs, this.timeoutMs);
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
