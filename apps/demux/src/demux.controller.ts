import { Controller, Inject, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import {
  Consumers,
  deviceHeaders,
  Headers,
  Subjects,
  type DecodedTelemetry,
  type DeviceRecord,
} from '@iot/contracts';
import { decodeRaw, type RejectedPart } from '@iot/demux-domain';
import type { Normalizer } from '@iot/normalizer-domain';
import {
  deviceRegistryView,
  Packer,
  publishNormalized,
  settleEach,
  type Delivery,
  type KvView,
  type JetStreamPatternExtras,
  type JetStreamPublisher,
  type MessageMeta,
  type NatsConnection,
} from '@iot/messaging';
import type { IotMetrics, Logger } from '@iot/observability';
import { ENV, LOGGER, METRICS, NATS, PUBLISHER, READINESS, type Readiness } from '@iot/service-runtime';
import type { CleanedEnv } from 'envalid';
import type { demuxEnv } from './env';

const extras: JetStreamPatternExtras<Uint8Array> = {
  consumer: Consumers.demux,
  decoder: 'bytes',
  // One call per batch, not per message: a NestJS handler call per message (its execution
  // context and observable) cost more than decoding the message.
  batch: true,
  // A batch takes the bridge's raw packs whole, ~130 messages each under a flood (its MQTT
  // window): 250 held one, 500 holds three, and their decoded messages leave in packs of up
  // to 250 instead of ~130. ./platform bench stages, interleaved (2026-12-06): 12.5-12.8 µs per
  // message against 13.1-13.5, RSS the same (144-148 MiB). Not 1,000: a batch's objects live
  // until its publishes are acked, and fewer of them survive each scavenge (2026-12-03: 250
  // against 1,000 with a message per JetStream message, 5-10% less CPU, 24 MiB less RSS).
  batchSize: 500,
  // Each batch costs a write of its publishes and one of its acks, whatever its size: a batch
  // of 50 starts when a slot is free, a smaller one waits until its oldest message has waited
  // 20 ms (at 2,000 msg/s, ~40 messages a batch instead of ~10; at 5,000, 10 ms of wait).
  // 2 ms with no minimum was measured on 2026-12-03: 30 ms less p50 at 5,000 msg/s, but
  // 8-10% more CPU per message end to end with the writer at 5 ms (docs/performance.md).
  // BATCH_LINGER_MS sets the linger for a deployment.
  minBatch: 50,
  lingerMs: 20,
  // The next batch starts while the last one waits for its publish acks; messages are
  // independent, and each batch's handlers run in order up to their first await.
  concurrency: 2,
};

/** The normalizer when demux normalizes in its own process (NORMALIZE_IN_DEMUX), else null. */
export const INLINE_NORMALIZER = Symbol('InlineNormalizer');

/**
 * Raw device message in, decoded readings out (one message per device and time); an invalid
 * message goes to the DLQ with why, and so does a gateway's reading for an unknown child.
 * With NORMALIZE_IN_DEMUX, the readings are normalized here and go out canonical on
 * iot.normalized.v1, exactly as the normalizer would have sent them (docs/adr/0006).
 */
@Controller()
export class DemuxController implements OnModuleInit, OnModuleDestroy {
  private readonly devices: KvView<DeviceRecord>;
  /**
   * A batch's messages leave in packs, one per tenant (docs/adr/0011): canonical ones with
   * NORMALIZE_IN_DEMUX, decoded ones for the normalizer without.
   */
  private readonly packer: Packer;

  constructor(
    @Inject(PUBLISHER) private readonly publisher: JetStreamPublisher,
    @Inject(ENV) private readonly env: CleanedEnv<typeof demuxEnv> & { NATS_STREAM_REPLICAS: number },
    @Inject(NATS) nc: NatsConnection,
    @Inject(LOGGER) logger: Logger,
    @Inject(READINESS) readiness: Readiness,
    @Inject(METRICS) private readonly metrics: IotMetrics,
    @Inject(INLINE_NORMALIZER) private readonly normalizer: Normalizer | null,
  ) {
    // Gateways and SenML packs name child devices: they must be registered in the same tenant.
    this.devices = deviceRegistryView(nc, logger, env.NATS_STREAM_REPLICAS);
    this.packer = new Packer(publisher, normalizer ? Subjects.normalizedPack : Subjects.decodedPack);
    readiness.add('device-registry', () => this.devices.ready);
  }

  async onModuleInit(): Promise<void> {
    await this.devices.start();
  }

  onModuleDestroy(): void {
    this.devices.stop();
  }

  @EventPattern(Consumers.demux.durable, extras)
  onRawBatch(@Payload() batch: Delivery<Uint8Array>[]): Promise<Map<number, unknown>> {
    return settleEach(batch, (d) => this.onRaw(d.payload, d.meta));
  }

  /** Throws (a PayloadValidationError) or rejects alike: settleEach takes both. */
  onRaw(bytes: Uint8Array, meta: MessageMeta): Promise<void> {
    const { outputs, rejected } = decodeRaw(
      bytes,
      {
        tenant: meta.tenant,
        device: meta.device,
        sourceTopic: meta.header(Headers.sourceTopic) ?? '',
        msgId: meta.msgId,
        receivedAt: meta.receivedAt ?? Date.now(),
      },
      { maxFutureSkewMs: this.env.MAX_FUTURE_SKEW_MS, defaultModel: meta.header(Headers.model) ?? 'generic' },
      this.devices,
    );
    // One output (a device's own message) is the common case: its promise is the packer's
    // own, with no array of promises and no async frame per message.
    if (outputs.length === 1 && rejected.length === 0)
      return this.forward(outputs[0]!.telemetry, outputs[0]!.msgId, meta.traceparent);
    return Promise.all(
      outputs.map(({ msgId, telemetry }) => this.forward(telemetry, msgId, meta.traceparent)),
    ).then(() => this.deadLetterRejected(bytes, meta, rejected));
  }

  /** The accepted part went on; each refused child is kept, with why, for a replay once registered. */
  private async deadLetterRejected(
    bytes: Uint8Array,
    meta: MessageMeta,
    rejected: RejectedPart[],
  ): Promise<void> {
    if (rejected.length === 0) return;
    await Promise.all(
      rejected.map((r) =>
        this.publisher.publishToDlq({
          stage: Consumers.demux.stage,
          tenant: meta.tenant,
          originalSubject: meta.subject,
          data: bytes,
          originalHeaders: {
            [Headers.tenant]: meta.tenant,
            [Headers.device]: meta.device,
            [Headers.sourceTopic]: meta.header(Headers.sourceTopic) ?? '',
            [Headers.receivedAt]: String(meta.receivedAt ?? ''),
            [Headers.traceparent]: meta.traceparent ?? '',
          },
          reason: r.reason,
          detail: r.detail,
          msgId: `${meta.msgId}:rejected:${r.device}`,
        }),
      ),
    );
  }

  /** One decoded message on to the next stage: iot.decoded.v1, or normalized here. */
  private forward(telemetry: DecodedTelemetry, msgId: string, traceparent?: string): Promise<void> {
    if (this.normalizer)
      return publishNormalized(this.packer, this.metrics, telemetry, this.normalizer.normalize(telemetry), {
        msgId,
        traceparent,
      });
    return this.packer.add(
      telemetry.tenant,
      Subjects.decoded(telemetry.tenant, telemetry.device),
      telemetry,
      {
        msgId,
        traceparent,
        headers: deviceHeaders(telemetry.tenant, telemetry.device, telemetry.receivedAt),
      },
    );
  }
}
