import {
  Consumers,
  deviceHeaders,
  DlqReasons,
  Headers,
  Subjects,
  type DecodedTelemetry,
  type NormalizedTelemetry,
} from '@iot/contracts';
import type { IotMetrics } from '@iot/observability';
import type { Packer } from './pack';

/** What normalizing one decoded message gave (the normalizer domain's result, by shape). */
export interface NormalizedOutcome {
  telemetry: NormalizedTelemetry;
  /** Readings that could not be made canonical, with why. */
  rejected: ReadonlyArray<{ metric: string; reason: string }>;
  /** Points the deadband held back: counted, not sent. */
  suppressed: number;
}

/**
 * Sends the outcome of normalizing one decoded message, wherever that ran (the normalizer
 * service, or demux with NORMALIZE_IN_DEMUX, docs/adr/0006): the canonical telemetry on
 * `iot.normalized.v1`, with the decoded message's id, in a pack with the tenant's other
 * messages of the same turn (docs/adr/0011); the readings that could not be made canonical
 * to the DLQ as the normalizer stage's, under the decoded subject, so a replay goes through
 * the normalizer once the cause is fixed.
 * The points the deadband held back are counted in `iot_points_suppressed_total`.
 */
export function publishNormalized(
  packer: Packer,
  metrics: IotMetrics,
  decoded: DecodedTelemetry,
  { telemetry, rejected, suppressed }: NormalizedOutcome,
  ids: { msgId: string; traceparent?: string },
): Promise<void> {
  if (suppressed > 0) metrics.pointsSuppressed.inc({ stage: Consumers.normalizer.stage }, suppressed);
  const headers = deviceHeaders(telemetry.tenant, telemetry.device, telemetry.receivedAt);
  // Published even when the deadband held back every point: the device was heard, and
  // its twin's last-seen follows from this message (readers of iot.normalized.v1).
  const sent = packer.add(
    telemetry.tenant,
    Subjects.normalized(telemetry.tenant, telemetry.device),
    telemetry,
    {
      msgId: ids.msgId,
      traceparent: ids.traceparent,
      headers,
    },
  );
  if (rejected.length === 0) return sent;
  // The rest of the message was stored; these readings are kept, with why, for a replay.
  return sent.then(async () => {
    await packer.publisher.publishToDlq({
      stage: Consumers.normalizer.stage,
      tenant: telemetry.tenant,
      originalSubject: Subjects.decoded(decoded.tenant, decoded.device),
      data: new TextEncoder().encode(
        JSON.stringify({
          ...decoded,
          readings: decoded.readings.filter((r) => rejected.some((x) => x.metric === r.metric)),
        }),
      ),
      originalHeaders: { ...headers, [Headers.traceparent]: ids.traceparent ?? '' },
      reason: DlqReasons.invalidPayload,
      detail: rejected.map((r) => r.reason).join('; '),
      msgId: `${ids.msgId}:rejected`,
    });
  });
}
