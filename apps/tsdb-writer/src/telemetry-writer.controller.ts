import { Controller, Inject, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import { Consumers, DlqReasons, Validators, type NormalizedTelemetry } from '@iot/contracts';
import { PermanentError, RetryableError, type Delivery, type JetStreamPatternExtras } from '@iot/messaging';
import type { IotMetrics, Logger } from '@iot/observability';
import { ENV, LOGGER, METRICS, READINESS, type Readiness } from '@iot/service-runtime';
import { TelemetryBatchWriter } from '@iot/tsdb-writer-data-access';
import type { CleanedEnv } from 'envalid';
import type { writerEnv } from './env';

type WriterEnv = CleanedEnv<typeof writerEnv>;

export const WRITER = Symbol('TelemetryBatchWriter');

/** A batch of canonical messages in, one transaction out; the batch is acked after COMMIT. */
@Controller()
export class TelemetryWriterController implements OnModuleInit, OnApplicationShutdown {
  private maintenance: NodeJS.Timeout | undefined;
  private rollup: NodeJS.Timeout | undefined;

  constructor(
    @Inject(WRITER) private readonly writer: TelemetryBatchWriter,
    @Inject(ENV) private readonly env: WriterEnv,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS) private readonly metrics: IotMetrics,
    @Inject(READINESS) readiness: Readiness,
  ) {
    readiness.add('database', () => this.writer.ping());
  }

  onModuleInit(): void {
    const maintain = () =>
      this.writer
        .maintainPartitions()
        .catch((e) => this.logger.warn({ err: String(e) }, 'partition maintenance failed; will retry'));
    void maintain();
    this.maintenance = setInterval(maintain, this.env.PARTITION_MAINTENANCE_MS);
    this.maintenance.unref();
    // One refresh at a time: a slow one (a backlog of late buckets) is not overtaken.
    let refreshing = false;
    const refresh = () => {
      if (refreshing) return;
      refreshing = true;
      this.writer
        .refreshRollup()
        .catch((e) => this.logger.warn({ err: String(e) }, 'rollup refresh failed; will retry'))
        .finally(() => (refreshing = false));
    };
    this.rollup = setInterval(refresh, this.env.ROLLUP_REFRESH_MS);
    this.rollup.unref();
  }

  @EventPattern(Consumers.tsdbWriter.durable, {
    consumer: Consumers.tsdbWriter,
    decoder: Validators.normalizedTelemetry,
    batch: true,
    batchSize: 1000,
    // A commit costs a round trip, a WAL flush and 0.2-0.4 ms of PostgreSQL's CPU whatever its
    // size: a batch of 100 starts when a connection is free, a smaller one waits until its
    // oldest message has waited 50 ms (at 2,000 msg/s, ~100 messages a batch instead of ~10;
    // at 5,000, 20 ms of wait). 5 ms with no minimum made batches of 37-48 messages at 5,000
    // msg/s and cost PostgreSQL 13-20 µs more per message (docs/performance.md, 2026-12-03).
    minBatch: 100,
    lingerMs: 50,
    // Three transactions in flight (the pool has four connections): while one waits for its
    // commit to reach the disk, the next batch is already being sent.
    concurrency: 3,
  } satisfies JetStreamPatternExtras<NormalizedTelemetry>)
  async onBatch(@Payload() batch: Delivery<NormalizedTelemetry>[]): Promise<Map<number, unknown>> {
    let refused;
    try {
      refused = await this.writer.writeIsolating(batch.map((d) => d.payload));
    } catch (e) {
      // The database is down or busy: every message of the batch comes back later.
      throw new RetryableError(`writing ${batch.length} messages failed: ${(e as Error).message}`, e);
    }
    // A message whose data PostgreSQL refuses would fail however often it came: it alone goes
    // to the DLQ, with why, and the rest of its batch is stored.
    const failures = new Map<number, unknown>();
    for (const [i, err] of refused) {
      const { tenant, device, messageId } = batch[i]!.payload;
      failures.set(
        i,
        new PermanentError(
          DlqReasons.invalidPayload,
          `PostgreSQL refused message ${messageId} of ${tenant}/${device}: ${err.message} (SQLSTATE ${err.code}); ` +
            'correct what the device sends (or the normalizer makes of it), then replay the message from the DLQ',
        ),
      );
    }
    const committedAt = Date.now();
    batch.forEach(({ payload }, i) => {
      if (refused.has(i)) return;
      this.metrics.eventToCommit.observe((committedAt - payload.ts) / 1000);
      this.metrics.ingestToCommit.observe((committedAt - payload.receivedAt) / 1000);
    });
    return failures;
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.maintenance);
    clearInterval(this.rollup);
    await this.writer.close();
  }
}
