import {
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type FetchMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  Headers,
  isPackSubject,
  PACK_TOKEN,
  parseDeviceSubject,
  Streams,
  subjectMatcher,
  UNKNOWN_TENANT,
  type CompiledValidator,
  type ConsumerContract,
} from '@iot/contracts';
import { withExtractedContext, type HeaderCarrier, type IotMetrics, type Logger } from '@iot/observability';
import { BacklogGate, CheckBudget, consumerBacklog } from './backlog';
import { ensureConsumer, keptFilter, whenJetStreamAnswers } from './provisioning';
import { ACK, PermanentError, settle, type Settlement } from './errors';
import { JetStreamPublisher } from './publisher';
import { decodePack, PACK_MAX_ITEMS, type PackItem } from './pack';
import { receivedHeaders } from './headers';

/** What a handler learns about a message: never the JsMsg itself. */
export interface MessageMeta {
  subject: string;
  tenant: string;
  device: string;
  msgId: string;
  receivedAt: number | undefined;
  deliveryCount: number;
  streamSequence: number;
  traceparent: string | undefined;
  header(name: string): string | undefined;
}

export interface Delivery<T> {
  payload: T;
  meta: MessageMeta;
}

/** Per-message handler: return to ack, throw to nak or dead-letter. */
export type MessageHandler<T> = (payload: T, meta: MessageMeta) => Promise<void>;

/**
 * Batch handler: return to ack the whole batch; throw to settle every message by the rule.
 * It may instead return the failures of some messages (by index) to settle those alone.
 */
export type BatchHandler<T> = (batch: Delivery<T>[]) => Promise<void | Map<number, unknown>>;

/**
 * Runs `fn` on every delivery of a batch at once and returns the failures by index, for a
 * batch handler whose messages are independent: each failed message is settled alone (nak
 * or DLQ by the one rule), and the rest are acked. `fn` may throw or reject alike. It runs
 * for every message of the pipeline: no async frame of its own per message (one promise and
 * one turn of the microtask queue less each).
 */
export function settleEach<T>(
  batch: Delivery<T>[],
  fn: (d: Delivery<T>, index: number) => Promise<void>,
): Promise<Map<number, unknown>> {
  const failures = new Map<number, unknown>();
  const running = new Array<Promise<void>>(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const fail = (e: unknown): void => void failures.set(i, e ?? new Error('handler threw undefined'));
    try {
      running[i] = fn(batch[i]!, i).then(undefined, fail);
    } catch (e) {
      fail(e);
    }
  }
  return Promise.all(running).then(() => failures);
}

export type PayloadDecoder<T> = 'bytes' | CompiledValidator<T>;

export interface ConsumerRunnerOptions<T> {
  nc: NatsConnection;
  js: JetStreamClient;
  contract: ConsumerContract;
  decoder: PayloadDecoder<T>;
  handler: { kind: 'message'; fn: MessageHandler<T> } | { kind: 'batch'; fn: BatchHandler<T> };
  publisher: JetStreamPublisher;
  logger: Logger;
  metrics: IotMetrics;
  /** Messages processed together (at most). */
  batchSize?: number;
  /** How long a partial batch waits for more messages before it is processed (ms). */
  lingerMs?: number;
  /**
   * A batch of at least this many messages starts as soon as a slot is free, without its
   * linger; a smaller one waits until its oldest message has waited `lingerMs` (default: the
   * batch size). Below a batch's fixed cost (a commit, a write of publishes and acks), a
   * batch is not worth starting early.
   */
  minBatch?: number;
  /**
   * Batches processed at once. Above 1, the next batch starts while the last one waits for
   * its commit or its publish acks, so a stage is not idle for a round trip per batch; only
   * for handlers whose effects do not depend on the order of batches.
   */
  concurrency?: number;
  lagIntervalMs?: number;
  /**
   * Backpressure from the next stage: while `consumer` (the durable that reads what this
   * runner's handler publishes) has a backlog filling more than `above` of its stream's byte
   * limit, this runner asks for no more messages, and goes on once it is below `below`. The
   * backlog then waits in this runner's own stream, unprocessed and kept, instead of being
   * discarded from the next one by its limits (docs/reliability.md). Checked every
   * `lagIntervalMs`, and whenever the runner has taken what the last check allows
   * (`CheckBudget`: what the next stream has room for), so that a burst between two checks
   * cannot overfill it.
   */
  holdBackFor?: { consumer: ConsumerContract; above: number; below: number };
}

const decoder = new TextDecoder();

/** Ack-wait extensions a batch in progress may take: past them a stuck batch is redelivered. */
const WORKING_EXTENSIONS = 4;

/**
 * How long a pull request waits at the server for messages (ms). At rest a runner sends one
 * such request this often, and the server a heartbeat in between.
 */
const PULL_EXPIRES_MS = 30_000;

/**
 * The least time between two reads of the next stage's backlog (ms) when a stage has taken
 * what the last one allowed (`CheckBudget`): a stage catching up into a small stream reads
 * it at most this often, not on every pull.
 */
const MIN_CHECK_GAP_MS = 100;

/** One pull request: how many messages it asked for, how many came. */
interface Pull {
  asked: number;
  received: number;
  messages?: ConsumerMessages;
  /** Settles when the request is open (or failed to open). */
  opened?: Promise<void>;
  /** Closed by the runner (stop, or another pull failed): its end asks for nothing. */
  closing?: boolean;
}

/**
 * The pull loop: pull messages as batches settle, gather them into batches, decode and
 * validate, run the handler, settle each message by the one rule (errors.ts). Stops pulling
 * on `stop()` and settles what is in flight before resolving. Recreates its durable consumer
 * if it disappears.
 */
export class ConsumerRunner<T> {
  private running = false;
  private loop: Promise<void> | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private attached = false;
  /** The consumer the pulls go to, while the loop holds one that works. */
  private consumer: Consumer | undefined;
  /** Ends the loop's wait on the current consumer: with an error when a pull failed. */
  private release: ((err?: unknown) => void) | undefined;
  /** Resolves on stop(): the loop's back-off and its recreating of the consumer end with it. */
  private stopped!: Promise<void>;
  private markStopped: () => void = () => undefined;
  private readonly pulls = new Set<Pull>();
  /** A pull request is being opened (nats.js's fetch() resolves on a later tick). */
  private opening = false;
  /**
   * Messages received and not yet settled, buffered or in a batch in progress: a pack's
   * messages each count (docs/adr/0011), as do `pullSize`, `batchSize` and `minBatch`.
   */
  private held = 0;
  /** Of `held`, those still in the buffer. */
  private buffered = 0;
  /**
   * Messages per JetStream message, as a pull expects them (packs hold many, docs/adr/0011): a
   * pull asks for as many JetStream messages as should bring the messages that fit, not a
   * pull size of packs. It starts at the largest pack, so the first pull after a start into
   * a backlog of packs brings about a pull size; it rises at once to a larger pack, and falls
   * an eighth of the way to each smaller one (to 1 within about 50 messages alone).
   */
  private perReceived = PACK_MAX_ITEMS;
  /**
   * Asks again only once this many messages fit (half the pull size): fewer, larger pull
   * requests. A quarter, as nats.js's consume does, read a higher p99 at 5,000 msg/s
   * (docs/performance-history.md, 2026-12-04 night).
   */
  private readonly refillAt: number;
  private readonly batchSize: number;
  private readonly lingerMs: number;
  private readonly concurrency: number;
  private readonly minBatch: number;
  private buffer: Received[] = [];
  /** When the oldest buffered message arrived (performance.now()). */
  private oldestAt = 0;
  private pumpQueued = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  /** The subjects the handler takes, when the contract says (`handledSubjects`); else all. */
  private readonly handles?: (subject: string) => boolean;
  /** Shut while the next stage is too far behind (`holdBackFor`): nothing more is asked for. */
  private readonly holdGate?: BacklogGate;
  /** With `holdBackFor`: what may be taken before the next stage's backlog is read again. */
  private readonly budget?: CheckBudget;
  /** Messages settled so far (what the next stream's growth is measured against). */
  private settled = 0;
  /** When the next stage's backlog was last read, and whether a read is due or under way. */
  private lastCheckAt = 0;
  private checkDue = false;
  /**
   * The JetStream manager the checks read through, made once: making one asks the server for
   * the account's info, a round trip the 5 s report and every check of the next stage would
   * otherwise repeat.
   */
  private jsm: JetStreamManager | undefined;

  private get heldBack(): boolean {
    return this.holdGate?.shut ?? false;
  }

  constructor(private readonly o: ConsumerRunnerOptions<T>) {
    this.batchSize = o.batchSize ?? 256;
    this.lingerMs = o.lingerMs ?? 5;
    this.minBatch = Math.min(o.minBatch ?? this.batchSize, this.batchSize);
    this.concurrency = o.concurrency ?? 1;
    this.refillAt = Math.max(this.minBatch, Math.floor(this.pullSize / 2));
    // One batch more than are processed at once is pulled, so the next one fills meanwhile.
    if (this.pullSize > o.contract.maxAckPending)
      throw new Error(
        `batch size ${this.batchSize} x (concurrency ${this.concurrency} + 1) of ${o.contract.durable} needs max ack pending >= ${this.pullSize}, it is ${o.contract.maxAckPending}`,
      );
    o.metrics.initStage(o.contract.stage);
    if (o.contract.handledSubjects) this.handles = subjectMatcher(o.contract.handledSubjects);
    if (o.holdBackFor) {
      this.holdGate = new BacklogGate(o.holdBackFor);
      this.budget = new CheckBudget();
      o.metrics.consumerHeldBack.set(
        { consumer: o.contract.durable, downstream: o.holdBackFor.consumer.durable },
        0,
      );
    }
  }

  private get pullSize(): number {
    return this.batchSize * (this.concurrency + 1);
  }

  /**
   * Pulling, or held back by the next stage with its consumer in hand: a stage that starts
   * while the next one is behind is working as it should, not unready.
   */
  get isAttached(): boolean {
    return this.running && (this.attached || (this.heldBack && this.consumer !== undefined));
  }

  async start(): Promise<void> {
    const { contract, logger } = this.o;
    const info = await whenJetStreamAnswers(
      `consumer ${contract.durable}`,
      async () => ensureConsumer(await jetstreamManager(this.o.nc), contract),
      logger,
    );
    const kept = keptFilter(info, contract);
    if (kept)
      logger.info(
        { consumer: contract.durable, filter: kept, contract: contract.filterSubjects },
        "nats-server kept the consumer's earlier filter (before 2.10 an update cannot change it): it works as before",
      );
    this.running = true;
    this.stopped = new Promise((resolve) => (this.markStopped = resolve));
    // The first report comes before the first pull when the runner may be held back: started
    // while the next stage is far behind, a stage takes nothing, not a pull's worth first.
    const firstReport = this.reportLag();
    if (this.o.holdBackFor) await firstReport;
    this.loop = this.run();
    this.lagTimer = setInterval(() => void this.reportLag(), this.o.lagIntervalMs ?? 5_000);
    this.lagTimer.unref();
  }

  /**
   * Stops pulling, settles every message the server sent, resolves when none is in flight.
   *
   * Each pull's inbox is drained before it is closed: unsubscribed, then a round trip to the
   * server, taking in every message that arrives meanwhile. The server hands a pull's
   * messages only to an inbox someone listens on, but what it sent before it read the
   * unsubscribe is already on the way; closing at once dropped those on arrival, and each
   * then waited out its ack wait (30-60 s) before anyone could have it: up to a pull's worth,
   * 512 messages in a measurement, after every restart under load.
   */
  async stop(): Promise<void> {
    this.running = false;
    this.markStopped();
    clearInterval(this.lagTimer);
    await this.closePulls();
    this.release?.();
    await this.loop;
    await this.settleAll();
  }

  /**
   * Holds a consumer and pulls from it until stop() or a failed pull; then, while running,
   * waits (backing off) and starts again, recreating the durable consumer if it is gone.
   */
  private async run(): Promise<void> {
    const { contract, logger } = this.o;
    let failures = 0;
    while (this.running) {
      try {
        const consumer = await Promise.race([
          this.o.js.consumers.get(contract.stream, contract.durable),
          this.stopped.then(() => undefined),
        ]);
        if (!consumer) break;
        await new Promise<void>((resolve, reject) => {
          this.release = (err) => (err === undefined ? resolve() : reject(err));
          // stop() may have come while the consumer was looked up: it had nothing to release.
          if (!this.running) return resolve();
          this.consumer = consumer;
          failures = 0;
          this.ask();
        });
      } catch (e) {
        this.consumer = undefined;
        this.attached = false;
        await this.closePulls();
        if (!this.running) break;
        failures++;
        this.o.metrics.workerErrors.inc({ stage: contract.stage, kind: 'connection' });
        logger.warn({ err: String(e), consumer: contract.durable }, 'pull failed; will retry');
        // Neither the wait nor the requests hold up a stop(): with the server away (a pull
        // ends with "server shutdown"), a request waits out its timeout (5 s).
        let timer: NodeJS.Timeout | undefined;
        const backoff = Math.min(5_000, 100 * 2 ** Math.min(failures - 1, 6));
        await Promise.race([new Promise((r) => (timer = setTimeout(r, backoff))), this.stopped]);
        clearTimeout(timer);
        // The consumer may have been deleted (by an operator, or lost with a stream): recreate it.
        if (this.running) await Promise.race([this.recreate(), this.stopped]);
      } finally {
        this.release = undefined;
        this.consumer = undefined;
      }
    }
  }

  /**
   * Asks the server for as many messages as fit: at most the pull size held or asked for at
   * once, so a stage that falls behind holds no more than that (its messages waiting in the
   * buffer, unlike a batch in progress, get no `working()`), and stop() has no more to
   * settle. Called when the loop has a consumer, when a batch settles and when a pull ends.
   */
  private ask(): void {
    const consumer = this.consumer;
    if (!this.running || !consumer || this.opening || this.heldBack) return;
    if (this.budget?.spent) return this.checkSoon();
    let outstanding = 0;
    for (const p of this.pulls) outstanding += Math.max(0, p.asked - p.received);
    const room = this.pullSize - this.held - outstanding * this.perReceived;
    if (room < this.refillAt) return;
    // No more than the last check of the next stage allows (what is asked and not yet come
    // counts against it).
    const allowed = this.budget ? this.budget.left - outstanding * this.perReceived : room;
    if (allowed <= 0) return;
    const pull: Pull = {
      asked: Math.max(1, Math.floor(Math.min(room, allowed) / this.perReceived)),
      received: 0,
    };
    this.pulls.add(pull);
    this.opening = true;
    // The callback, which nats.js reads for a fetch as for a consume (its type names it only
    // for a consume), hands over each socket read's messages in one synchronous loop.
    const options = {
      max_messages: pull.asked,
      expires: PULL_EXPIRES_MS,
      callback: (m: JsMsg) => {
        pull.received++;
        this.enqueue(m);
      },
    };
    pull.opened = consumer.fetch(options as FetchMessages).then(
      (messages) => {
        this.opening = false;
        pull.messages = messages;
        void messages.closed().then((err) => this.pullEnded(pull, err));
        if (!this.running || this.consumer !== consumer) return void this.closePull(pull);
        this.attached = true;
        this.ask();
      },
      (err: unknown) => {
        this.opening = false;
        this.pulls.delete(pull);
        this.release?.(err ?? new Error('pull request failed'));
      },
    );
  }

  /** A pull ended: filled or expired, and the loop asks again; or failed, and it starts over. */
  private pullEnded(pull: Pull, err: void | Error): void {
    this.pulls.delete(pull);
    if (!this.running || pull.closing) return;
    if (err) this.release?.(err);
    else this.ask();
  }

  private closePulls(): Promise<unknown> {
    return Promise.all([...this.pulls].map((p) => this.closePull(p)));
  }

  private async closePull(pull: Pull): Promise<void> {
    pull.closing = true;
    await pull.opened;
    const messages = pull.messages;
    if (!messages) return;
    await inboxOf(messages)
      ?.drain()
      .catch(() => undefined);
    await messages.close().catch(() => undefined);
    this.pulls.delete(pull);
    // What it had asked for and not received no longer counts against the room: ask again
    // (nothing is asked while stopping, held back, or without a consumer).
    this.ask();
  }

  private async recreate(): Promise<void> {
    try {
      await ensureConsumer(await jetstreamManager(this.o.nc), this.o.contract);
    } catch {
      /* the server may still be away: the next round tries again */
    }
  }

  private enqueue(m: JsMsg): void {
    if (this.handles && !this.handles(m.subject)) return this.skip(m);
    const received = isPackSubject(m.subject) ? ReceivedPack.read(m) : m;
    const count = sizeOf(received);
    this.perReceived = count > this.perReceived ? count : this.perReceived + (count - this.perReceived) / 8;
    this.held += count;
    this.buffered += count;
    if (this.budget) this.budget.taken += count;
    // A pull asks for as many JetStream messages as should fit by the sizes seen so far; when
    // packs come while it is open, it would bring too many: past twice the pull size it is
    // ended (what is already on its way is still taken in).
    if (this.held > 2 * this.pullSize) for (const p of this.pulls) if (!p.closing) void this.closePull(p);
    if (this.buffer.length === 0) this.oldestAt = performance.now();
    this.buffer.push(received);
    // After the rest of this read: nats.js hands over what one socket read holds in one
    // synchronous loop, and those messages should go in one batch.
    if (!this.pumpQueued) {
      this.pumpQueued = true;
      queueMicrotask(() => {
        this.pumpQueued = false;
        this.pump();
      });
    }
  }

  /** Another service's message in a stream taken whole (`handledSubjects`): acked, unhandled. */
  private skip(m: JsMsg): void {
    const stage = this.o.contract.stage;
    m.ack();
    this.o.metrics.messagesReceived.inc({ stage });
    this.o.metrics.messagesProcessed.inc({ stage, outcome: 'skipped' });
  }

  /**
   * Starts batches in order of arrival while fewer than `concurrency` are in flight and the
   * buffer holds one worth starting: `minBatch` messages, or any number once the oldest has
   * waited `lingerMs` (or the runner is stopping). Otherwise waits, at most until the oldest
   * message's linger is over. Called on arrival, when a batch settles and when a linger ends.
   */
  private pump(): void {
    while (this.buffer.length > 0 && this.inFlight.size < this.concurrency) {
      const waited = performance.now() - this.oldestAt;
      if (this.running && this.buffered < this.minBatch && waited < this.lingerMs) {
        this.lingerTimer ??= setTimeout(() => {
          this.lingerTimer = undefined;
          this.pump();
        }, this.lingerMs - waited);
        return;
      }
      // What stays behind arrived after this batch's first message: its wait so far is
      // counted from then, which only makes it start sooner.
      let taken = 0;
      let size = 0;
      while (taken < this.buffer.length) {
        const next = sizeOf(this.buffer[taken]!);
        if (taken > 0 && size + next > this.batchSize) break;
        size += next;
        taken++;
      }
      const batch = this.buffer.splice(0, taken);
      this.buffered -= size;
      const done: Promise<void> = this.process(batch)
        .catch((e) => {
          // Unsettled messages come back after the ack wait; the loop must go on.
          this.o.logger.error(
            { err: String(e), consumer: this.o.contract.durable, messages: size },
            'batch failed to settle',
          );
        })
        .finally(() => {
          this.inFlight.delete(done);
          this.held -= size;
          this.settled += size;
          this.pump();
          this.ask();
        });
      this.inFlight.add(done);
    }
    if (this.buffer.length === 0) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
    }
  }

  /** Starts what is buffered, whatever its size, and resolves when no batch is in flight. */
  private async settleAll(): Promise<void> {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    for (;;) {
      this.pump();
      if (this.inFlight.size === 0) return;
      await Promise.race(this.inFlight);
    }
  }

  /**
   * While a batch is being worked on, tells the server so (`working()`) every half ack wait,
   * so a slow database does not get the batch redelivered to another replica meanwhile; at
   * most WORKING_EXTENSIONS times, so a handler that hangs lets its messages go in the end.
   */
  private keepAlive(msgs: JsMsg[]): () => void {
    let extensions = 0;
    const timer = setInterval(() => {
      if (++extensions > WORKING_EXTENSIONS) return clearInterval(timer);
      for (const m of msgs) m.working();
    }, this.o.contract.ackWaitMs / 2);
    timer.unref();
    return () => clearInterval(timer);
  }

  private async process(batch: Received[]): Promise<void> {
    const stopKeepAlive = this.keepAlive(batch.map(jsMsgOf));
    try {
      await this.processBatch(batch);
    } finally {
      stopKeepAlive();
    }
  }

  private async processBatch(batch: Received[]): Promise<void> {
    const { metrics, contract } = this.o;
    const stage = contract.stage;
    const end = metrics.processingDuration.startTimer({ stage });
    // The messages as handlers see them: a pack's one by one, each beside the JetStream
    // message it came in (`msgs[i]`, the same for all of a pack's); a pack that could not be
    // read is one message that failed to decode.
    const msgs: JsMsg[] = [];
    const items: Array<PackItem | undefined> = [];
    const outcomes: Array<unknown> = [];
    for (const r of batch) {
      if (r instanceof ReceivedPack) {
        for (const item of r.items ?? [undefined]) {
          msgs.push(r.m);
          items.push(item);
          outcomes.push(r.error);
        }
      } else {
        msgs.push(r);
        items.push(undefined);
        outcomes.push(undefined);
      }
    }
    metrics.messagesReceived.inc({ stage }, msgs.length);
    // Decode each message; a message that does not decode is settled alone, now.
    const deliveries: Array<Delivery<T> | undefined> = msgs.map((m, i) => {
      if (outcomes[i] !== undefined) return undefined;
      try {
        const item = items[i];
        return item
          ? new PackItemDelivery(this.decodeItem(item, m), m, item)
          : new JsDelivery(this.decode(m), m);
      } catch (e) {
        outcomes[i] = e;
        return undefined;
      }
    });
    const good: number[] = [];
    deliveries.forEach((d, i) => d && good.push(i));
    if (this.o.handler.kind === 'message') {
      const fn = this.o.handler.fn;
      const failures = await settleEach(
        good.map((i) => deliveries[i]!),
        (d) => withExtractedContext(traceCarrier(d.meta), () => fn(d.payload, d.meta)),
      );
      failures.forEach((err, k) => (outcomes[good[k]!] = err));
    } else if (good.length > 0) {
      try {
        const failures = await this.o.handler.fn(good.map((i) => deliveries[i]!));
        failures?.forEach((err, k) => (outcomes[good[k]!] = err));
      } catch (e) {
        for (const i of good) outcomes[i] = e ?? new Error('handler threw undefined');
      }
    }
    // The delivery count (parsed from the reply subject) only matters to a failed message.
    const settlements = msgs.map((m, i) =>
      outcomes[i] === undefined ? ACK : settle(outcomes[i], m.info.deliveryCount, contract.maxDeliver),
    );
    // A batch that failed as a whole (its database or next stream is down) is one event: log
    // it once, not once per message.
    const wholeBatchRetry = msgs.length > 1 && settlements.every((s) => s.kind === 'nak');
    if (wholeBatchRetry) {
      const first = settlements[0] as Extract<Settlement, { kind: 'nak' }>;
      this.o.logger.warn(
        {
          consumer: contract.durable,
          messages: msgs.length,
          delayMs: first.delayMs,
          err: String(first.error),
        },
        'batch failed; will retry',
      );
    }
    // A message alone is settled alone; a pack's messages together (applyPack).
    const applied: Array<Promise<void>> = [];
    let acked = 0;
    for (let i = 0; i < msgs.length;) {
      const m = msgs[i]!;
      if (!items[i]) {
        if (settlements[i]!.kind === 'ack') acked++;
        applied.push(this.apply(m, settlements[i]!, wholeBatchRetry, deliveries[i]));
        i++;
        continue;
      }
      let j = i + 1;
      while (j < msgs.length && msgs[j] === m) j++;
      applied.push(
        this.applyPack(m, items.slice(i, j) as PackItem[], settlements.slice(i, j), wholeBatchRetry),
      );
      i = j;
    }
    await Promise.all(applied);
    // Counted once per batch: a labelled counter hashes its labels on every call.
    if (acked > 0) metrics.messagesProcessed.inc({ stage, outcome: 'ok' }, acked);
    end();
    // Such a batch also says: wait. Pause consuming as long as the backoff instead of pulling
    // more messages only to nak them.
    if (settlements.every((s) => s.kind === 'nak')) {
      const delay = Math.min(...settlements.map((s) => (s.kind === 'nak' ? s.delayMs : 0)));
      await this.pause(Math.min(delay, 5_000));
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const started = Date.now();
      const tick = () => (!this.running || Date.now() - started >= ms ? resolve() : setTimeout(tick, 50));
      tick();
    });
  }

  private decode(m: JsMsg): T {
    return this.decodeBytes(m.data, m.subject);
  }

  private decodeBytes(data: Uint8Array, subject: string): T {
    if (this.o.decoder === 'bytes') return data as unknown as T;
    let value: unknown;
    try {
      value = JSON.parse(decoder.decode(data));
    } catch (e) {
      throw new PermanentError(
        'invalid-payload',
        `payload on ${subject} is not JSON: ${(e as Error).message}`,
      );
    }
    const validator: CompiledValidator<T> = this.o.decoder;
    validator.assert(value);
    return value as T;
  }

  /** One message of a pack as the decoder would have read it alone. */
  private decodeItem(item: PackItem, pack: JsMsg): T {
    if (item.payload instanceof Uint8Array || this.o.decoder === 'bytes')
      return this.decodeBytes(payloadBytes(item), itemSubject(pack, item));
    const validator: CompiledValidator<T> = this.o.decoder;
    validator.assert(item.payload);
    return item.payload as T;
  }

  /**
   * Settles a pack by its messages' settlements (docs/adr/0011): acked when each was handled
   * or dead-lettered; if any is to be retried, the whole pack comes back after the shortest
   * delay, and the rest are handled again then, as after any redelivery (the writer stores a
   * point once). A message dead-lettered goes alone, with its own subject and headers, so a
   * replay brings it back as a message of its own.
   */
  private async applyPack(
    m: JsMsg,
    items: PackItem[],
    settlements: Settlement[],
    quiet: boolean,
  ): Promise<void> {
    const { metrics, contract, logger } = this.o;
    const stage = contract.stage;
    const naks = settlements.filter((s): s is Extract<Settlement, { kind: 'nak' }> => s.kind === 'nak');
    if (naks.length > 0) {
      metrics.workerErrors.inc({ stage, kind: 'retryable' }, naks.length);
      metrics.messagesProcessed.inc({ stage, outcome: 'retry' }, items.length);
      const delayMs = Math.min(...naks.map((s) => s.delayMs));
      if (!quiet)
        logger.warn(
          {
            subject: m.subject,
            messages: items.length,
            failed: naks.length,
            delivery: m.info.deliveryCount,
            delayMs,
            err: String(naks[0]!.error),
          },
          'processing failed for messages of a pack; the pack will be retried',
        );
      m.nak(delayMs);
      return;
    }
    let dead = 0;
    try {
      await Promise.all(
        settlements.map((s, k) => {
          if (s.kind !== 'dlq') return undefined;
          dead++;
          const item = items[k]!;
          return this.o.publisher.publishToDlq({
            stage,
            tenant: item.headers[Headers.tenant] || UNKNOWN_TENANT,
            originalSubject: itemSubject(m, item),
            data: payloadBytes(item),
            originalHeaders: item.headers,
            reason: s.reason,
            detail: s.detail,
            msgId: item.headers[Headers.msgId] || `${contract.stream}:${m.seq}:${k}`,
          });
        }),
      );
    } catch (e) {
      // Not dead-lettered, so not acked either: the pack comes back and we try again.
      metrics.workerErrors.inc({ stage, kind: 'permanent' }, dead);
      logger.error({ subject: m.subject, err: String(e) }, 'could not publish to the DLQ; will retry');
      m.nak(5_000);
      return;
    }
    if (dead > 0) {
      metrics.workerErrors.inc({ stage, kind: 'permanent' }, dead);
      metrics.messagesProcessed.inc({ stage, outcome: 'dlq' }, dead);
      logger.info({ subject: m.subject, messages: dead }, 'messages of a pack dead-lettered');
    }
    if (items.length > dead) metrics.messagesProcessed.inc({ stage, outcome: 'ok' }, items.length - dead);
    m.ack();
  }

  /** Settles one message; `delivery` lends the meta its handler already read, if any. */
  private async apply(m: JsMsg, s: Settlement, quiet = false, delivery?: Delivery<T>): Promise<void> {
    const { metrics, contract, logger } = this.o;
    const stage = contract.stage;
    switch (s.kind) {
      case 'ack':
        m.ack(); // counted by the batch
        return;
      case 'nak':
        metrics.workerErrors.inc({ stage, kind: 'retryable' });
        metrics.messagesProcessed.inc({ stage, outcome: 'retry' });
        if (!quiet)
          logger.warn(
            { subject: m.subject, delivery: m.info.deliveryCount, delayMs: s.delayMs, err: String(s.error) },
            'processing failed; will retry',
          );
        m.nak(s.delayMs);
        return;
      case 'dlq': {
        metrics.workerErrors.inc({ stage, kind: 'permanent' });
        const meta = delivery?.meta ?? metaOf(m);
        try {
          await this.o.publisher.publishToDlq({
            stage,
            tenant: meta.tenant,
            originalSubject: m.subject,
            data: m.data,
            originalHeaders: m.headers,
            reason: s.reason,
            detail: s.detail,
            msgId: meta.msgId || `${contract.stream}:${m.seq}`,
          });
        } catch (e) {
          // Not dead-lettered, so not terminated either: it comes back and we try again.
          logger.error({ subject: m.subject, err: String(e) }, 'could not publish to the DLQ; will retry');
          m.nak(5_000);
          return;
        }
        logger.info({ subject: m.subject, reason: s.reason, detail: s.detail }, 'message dead-lettered');
        metrics.messagesProcessed.inc({ stage, outcome: 'dlq' });
        // No reason string: nats-server 2.9 takes only a bare "+TERM" and ignores "+TERM <why>",
        // leaving the message to come back after the ack wait and be dead-lettered again
        // (./platform chaos poison found it). The why is in the DLQ message's headers.
        m.term();
        return;
      }
      default: {
        const never: never = s;
        throw new Error(`unknown settlement ${JSON.stringify(never)}`);
      }
    }
  }

  private async reportLag(): Promise<void> {
    const { contract, metrics } = this.o;
    try {
      const jsm = await this.manager();
      const labels = { consumer: contract.durable, stream: contract.stream };
      const own = await consumerBacklog(jsm, contract);
      metrics.consumerLag.set(labels, own.lag);
      // Past its byte limit the stream drops its oldest messages, processed or not, and a
      // dropped one is then in no consumer's pending: this says it is coming (docs/reliability.md).
      metrics.consumerBacklogRatio.set(labels, own.ratio);
      await this.holdBackIfBehind(jsm);
      await reportDlqSize(jsm, metrics);
    } catch {
      /* monitoring must never hurt the work; the next tick tries again */
    }
  }

  private async manager(): Promise<JetStreamManager> {
    return (this.jsm ??= await jetstreamManager(this.o.nc));
  }

  /**
   * Reads the next stage's backlog now: what was taken since the last read is what the last
   * read allowed (`CheckBudget`). At most every MIN_CHECK_GAP_MS; a read that fails (the
   * server away) is tried again after it, and the stage takes nothing meanwhile.
   */
  private checkSoon(): void {
    if (this.checkDue || !this.running) return;
    this.checkDue = true;
    const timer = setTimeout(
      () =>
        void this.manager()
          .then((jsm) => this.holdBackIfBehind(jsm))
          .catch(() => undefined)
          .finally(() => {
            this.checkDue = false;
            this.ask();
          }),
      Math.max(0, this.lastCheckAt + MIN_CHECK_GAP_MS - Date.now()),
    );
    timer.unref();
  }

  /** Stops asking for messages while the next stage's backlog nears its stream's limit. */
  private async holdBackIfBehind(jsm: JetStreamManager): Promise<void> {
    const gate = this.holdGate;
    if (!gate || !this.running) return;
    this.lastCheckAt = Date.now();
    const checks = gate.checks;
    const changed = await gate.check(jsm);
    if (gate.checks > checks) this.budget?.renew(gate.room, gate.lastSeq, this.settled, this.held);
    if (!changed) return this.ask();
    const { consumer: next, above, below } = gate.o;
    const fields = {
      consumer: this.o.contract.durable,
      downstream: next.durable,
      stream: next.stream,
      backlogRatio: Number(gate.ratio.toFixed(3)),
    };
    this.o.metrics.consumerHeldBack.set(
      { consumer: this.o.contract.durable, downstream: next.durable },
      this.heldBack ? 1 : 0,
    );
    if (this.heldBack) {
      this.o.logger.warn(
        fields,
        `holding back: ${next.durable} is behind by more than ${above} of ${next.stream}'s limit; ` +
          `new messages wait in ${this.o.contract.stream} until it is below ${below}`,
      );
      // An open pull would go on bringing what arrives until it is full or expires (30 s):
      // closed, only what was already delivered is processed.
      await this.closePulls();
    } else {
      this.o.logger.info(fields, `going on: ${next.durable} has caught up`);
      this.ask();
    }
  }
}

/**
 * The subscription a pull request receives its messages on. nats.js 3.4 offers no drain for
 * a fetch or a consume (nats.go and nats.net have one); its implementation keeps the
 * subscription in a public field, `sub`, of the class it returns. Without it, a pull is
 * closed at once (the integration spec "stop() leaves no message to its ack wait" fails if
 * that field goes).
 */
function inboxOf(messages: ConsumerMessages): Subscription | undefined {
  const sub = (messages as ConsumerMessages & { sub?: Subscription }).sub;
  return typeof sub?.drain === 'function' && !sub.isClosed() ? sub : undefined;
}

/** Sets `iot_dlq_size` from the dead-letter stream's message count. */
export async function reportDlqSize(jsm: JetStreamManager, metrics: IotMetrics): Promise<void> {
  const dlq = await jsm.streams.info(Streams.DLQ_V1.name);
  metrics.dlqSize.set({ stream: Streams.DLQ_V1.name }, dlq.state.messages);
}

/** The trace headers of a message as OpenTelemetry reads them, from the headers read once. */
function traceCarrier(meta: MessageMeta): HeaderCarrier {
  return { get: (key) => meta.header(key) ?? '', set: () => undefined };
}

/**
 * A delivery whose meta is read from the message's headers only when a handler asks for it:
 * the writer never does, and parsing every header block cost it 4% of its CPU (a profile of
 * `./platform bench stages`, 2026-12-03), besides the objects the collector then had to move.
 */
class JsDelivery<T> implements Delivery<T> {
  private cached: MessageMeta | undefined;

  constructor(
    readonly payload: T,
    private readonly m: JsMsg,
  ) {}

  get meta(): MessageMeta {
    return (this.cached ??= metaOf(this.m));
  }
}

export function metaOf(m: JsMsg): MessageMeta {
  return new JsMessageMeta(m, receivedHeaders(m), m.subject);
}

/** A message of a pack: its own headers and subject, the pack's delivery count and sequence. */
class PackItemDelivery<T> implements Delivery<T> {
  private cached: MessageMeta | undefined;

  constructor(
    readonly payload: T,
    private readonly m: JsMsg,
    private readonly item: PackItem,
  ) {}

  get meta(): MessageMeta {
    return (this.cached ??= new JsMessageMeta(this.m, this.item.headers, itemSubject(this.m, this.item)));
  }
}

/** Where a message of a pack would have gone alone: the pack's subject, its device for `~pack`. */
function itemSubject(pack: JsMsg, item: PackItem): string {
  const device = item.headers[Headers.device];
  return device ? `${pack.subject.slice(0, -PACK_TOKEN.length)}${device}` : pack.subject;
}

/** A message of a pack as it would have come alone: its bytes, or its value written out in JSON. */
function payloadBytes(item: PackItem): Uint8Array {
  return item.payload instanceof Uint8Array ? item.payload : Buffer.from(JSON.stringify(item.payload));
}

/** A pack as it arrived (docs/adr/0011): its messages, read at once, or why it could not be read. */
class ReceivedPack {
  private constructor(
    readonly m: JsMsg,
    readonly items: PackItem[] | undefined,
    readonly error: unknown,
  ) {}

  static read(m: JsMsg): ReceivedPack {
    try {
      const format = receivedHeaders(m)[Headers.packFormat];
      return new ReceivedPack(m, decodePack(m.subject, m.data, format), undefined);
    } catch (e) {
      return new ReceivedPack(m, undefined, e);
    }
  }
}

/** What the runner buffers: a message, or a pack of them. */
type Received = JsMsg | ReceivedPack;

/** How many messages a handler will see of it. */
function sizeOf(r: Received): number {
  return r instanceof ReceivedPack ? (r.items?.length ?? 1) : 1;
}

function jsMsgOf(r: Received): JsMsg {
  return r instanceof ReceivedPack ? r.m : r;
}

/**
 * What a handler learns of its message. The delivery count and stream sequence come from the
 * message's reply subject, which nats.js splits into an object when asked (`m.info`): they are
 * read on demand, as no handler on the hot path asks (a profile of demux put that split at 3%
 * of its CPU when every message paid it).
 */
class JsMessageMeta implements MessageMeta {
  readonly subject: string;
  readonly tenant: string;
  readonly device: string;
  readonly msgId: string;
  readonly receivedAt: number | undefined;
  readonly traceparent: string | undefined;

  constructor(
    private readonly m: JsMsg,
    private readonly h: Record<string, string>,
    subject: string,
  ) {
    this.subject = subject;
    const tenant = h[Headers.tenant] || undefined;
    const device = h[Headers.device] || undefined;
    // The subject names tenant and device too; it is parsed only when a header is missing.
    const fromSubject = tenant && device ? undefined : parseDeviceSubject(this.subject);
    this.tenant = tenant ?? fromSubject?.tenant ?? UNKNOWN_TENANT;
    this.device = device ?? fromSubject?.device ?? '';
    this.msgId = h[Headers.msgId] ?? '';
    const received = h[Headers.receivedAt];
    this.receivedAt = received ? Number(received) : undefined;
    this.traceparent = h[Headers.traceparent] || undefined;
  }

  get deliveryCount(): number {
    return this.m.info.deliveryCount;
  }

  get streamSequence(): number {
    return this.m.info.streamSequence;
  }

  header(name: string): string | undefined {
    return this.h[name] || undefined;
  }
}
