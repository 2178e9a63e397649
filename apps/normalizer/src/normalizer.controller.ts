import { Controller, Inject } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import { Consumers, DlqReasons, Headers, Subjects, Validators, type DecodedTelemetry } from '@iot/contracts';
import {
  settleEach,
  type Delivery,
  type JetStreamPatternExtras,
  type JetStreamPublisher,
  type MessageMeta,
} from '@iot/messaging';
import type { Normalizer } from '@iot/normalizer-domain';
import type { IotMetrics } from '@iot/observability';
import { METRICS, PUBLISHER } from '@iot/service-runtime';

export const NORMALIZER = Symbol('Normalizer');

const extras: JetStreamPatternExtras<DecodedTelemetry> = {
  consumer: Consumers.normalizer,
  decoder: Validators.decodedTelemetry,
  // One NestJS call per batch, not per message (see demux).
  batch: true,
  batchSize: 1000,
  // Each batch costs a write of its publishes and one of its acks, whatever its size: below a
  // full batch, wait 20 ms for more (at 2,000 msg/s, ~40 messages a batch instead of ~10).
  lingerMs: 20,
  // The next batch starts while the last one waits for its publish acks; messages are
  // independent, and each batch's handlers run in order up to their first await.
  concurrency: 2,
};

/** Decoded readings in, canonical points out; readings that cannot be made canonical go to the DLQ. */
@Controller()
export class NormalizerController {
  constructor(
    @Inject(NORMALIZER) private readonly normalizer: Normalizer,
    @Inject(PUBLISHER) private readonly publisher: JetStreamPublisher,
    @Inject(METRICS) private readonly metrics: IotMetrics,
  ) {}

  @EventPattern(Consumers.normalizer.durable, extras)
  onDecodedBatch(@Payload() batch: Delivery<DecodedTelemetry>[]): Promise<Map<number, unknown>> {
    return settleEach(batch, (d) => this.onDecoded(d.payload, d.meta));
  }

  async onDecoded(decoded: DecodedTelemetry, meta: MessageMeta): Promise<void> {
    const { telemetry, rejected, suppressed } = this.normalizer.normalize(decoded);
    if (suppressed > 0) this.metrics.pointsSuppressed.inc({ stage: Consumers.normalizer.stage }, suppressed);
    const headers = {
      [Headers.tenant]: telemetry.tenant,
      [Headers.device]: telemetry.device,
      [Headers.receivedAt]: String(telemetry.receivedAt),
    };
    // Published even when the deadband held back every point: the device was heard, and
    // its twin's last-seen follows from this message (readers of iot.normalized.v1).
    await this.publisher.publishJson(Subjects.normalized(telemetry.tenant, telemetry.device), telemetry, {
      msgId: meta.msgId,
      traceparent: meta.traceparent,
      headers,
    });
    if (rejected.length > 0)
      // The rest of the message was stored; these readings are kept, with why, for a replay.
      await this.publisher.publishToDlq({
        stage: Consumers.normalizer.stage,
        tenant: telemetry.tenant,
        originalSubject: meta.subject,
        data: new TextEncoder().encode(
          JSON.stringify({
            ...decoded,
            readings: decoded.readings.filter((r) => rejected.some((x) => x.metric === r.metric)),
          }),
        ),
        originalHeaders: { ...headers, [Headers.traceparent]: meta.traceparent ?? '' },
        reason: DlqReasons.invalidPayload,
        detail: rejected.map((r) => r.reason).join('; '),
        msgId: `${meta.msgId}:rejected`,
      });
  }
}
