import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { Consumers } from '@iot/contracts';
import { BacklogGate, jetstreamManager, type JetStreamManager } from '@iot/messaging';
import type { IotMetrics, Logger } from '@iot/observability';
import { ENV, LOGGER, METRICS, NATS } from '@iot/service-runtime';
import type { BridgeEnv } from './env';

/** How old the last reading of the raw stream may be when a request comes (ms). */
const RECHECK_MS = 1_000;

/** What a refused device is told to wait before it sends again (s): a backlog takes minutes. */
export const REFUSED_RETRY_AFTER_S = 30;

/**
 * Whether HTTP ingest refuses new messages: while demux is behind by more than
 * INGEST_REFUSE_RATIO of the raw stream's byte limit, until it is below four fifths of it.
 * The raw stream is the pipeline's buffer of last resort (ADR 0008): past its limit it
 * discards its oldest messages, processed or not, and a message answered 202 would be lost.
 * Refused with a 503, the message stays with the device, which sends it again later.
 *
 * Read when requests come, at most once a second: nothing at rest. A request that finds the
 * reading stale starts a new one and goes on with the last; while refusing, it waits for the
 * new one, so the first request after the backlog is gone is taken. And once as many messages
 * were taken since the last reading as it left room for (`BacklogGate.room`: up to halfway
 * from the ratio to the stream's limit), the next request waits for a new one: a flood within
 * the second cannot pass the gate unseen (ADR 0008, "Amended"). MQTT messages, never refused,
 * are not counted; the reading a second later sees them.
 */
@Injectable()
export class RawStreamGate {
  private readonly gate?: BacklogGate;
  private jsm?: JetStreamManager;
  private checking?: Promise<void>;
  private checkedAt = -Infinity;
  /** Messages taken since the last successful reading. */
  private taken = 0;
  private readonly labels = { transport: 'http', consumer: Consumers.demux.durable };

  constructor(
    @Inject(ENV) env: BridgeEnv,
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS) private readonly metrics: IotMetrics,
  ) {
    const above = env.INGEST_REFUSE_RATIO;
    if (above > 0) this.gate = new BacklogGate({ consumer: Consumers.demux, above, below: above * 0.8 });
    metrics.ingestRefusing.set(this.labels, 0);
  }

  /** True while HTTP ingest should answer 503. */
  async refusing(): Promise<boolean> {
    const gate = this.gate;
    if (!gate) return false;
    const spent = this.taken >= gate.room;
    if (spent || performance.now() - this.checkedAt >= RECHECK_MS) this.checking ??= this.check(gate);
    if ((gate.shut || spent) && this.checking) await this.checking;
    if (gate.shut) return true;
    this.taken++;
    return false;
  }

  /** What a refused request is told. */
  get reason(): string {
    const { stream, durable } = Consumers.demux;
    return (
      `the platform is behind: ${durable} has ${Math.round((this.gate?.ratio ?? 0) * 100)}% of ${stream}'s limit ` +
      `still to process, and new messages could be discarded unprocessed; nothing of this one was kept: ` +
      `send it again after the Retry-After delay`
    );
  }

  private async check(gate: BacklogGate): Promise<void> {
    try {
      this.jsm ??= await jetstreamManager(this.nc);
      // Those taken while the reading is under way stay counted against the next one.
      const taken = this.taken;
      const checks = gate.checks;
      const changed = await gate.check(this.jsm);
      if (gate.checks > checks) this.taken -= taken;
      if (!changed) return;
      this.metrics.ingestRefusing.set(this.labels, gate.shut ? 1 : 0);
      const { stream, durable } = Consumers.demux;
      const fields = { consumer: durable, stream, backlogRatio: Number(gate.ratio.toFixed(3)) };
      if (gate.shut)
        this.logger.warn(
          fields,
          `refusing HTTP ingest (503): ${durable} is behind by more than ${gate.o.above} of ${stream}'s limit; ` +
            `taking messages again below ${gate.o.below}. MQTT messages are still taken`,
        );
      else this.logger.info(fields, `taking HTTP ingest again: ${durable} has caught up`);
    } catch {
      /* no JetStream manager (NATS away): the publish itself fails and answers 503 */
    } finally {
      this.checkedAt = performance.now();
      this.checking = undefined;
    }
  }
}
