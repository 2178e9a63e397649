/** Headers every pipeline message carries; DLQ messages carry the `iot-dlq-*` ones too. */
export const Headers = {
  msgId: 'Nats-Msg-Id',
  traceparent: 'traceparent',
  tenant: 'iot-tenant',
  device: 'iot-device',
  receivedAt: 'iot-received-at',
  /** The MQTT topic the message arrived on (tells demux the payload format). */
  sourceTopic: 'iot-source-topic',
  /** How the message reached the platform: absent for MQTT, `http` for HTTP ingest. */
  transport: 'iot-transport',
  /** The device model from the registry (tells the normalizer which profile applies). */
  model: 'iot-model',
  dlqReason: 'iot-dlq-reason',
  dlqStage: 'iot-dlq-stage',
  dlqDetail: 'iot-dlq-detail',
  originalSubject: 'iot-original-subject',
  /** The `Nats-Msg-Id` the message had (or would have had), kept on its DLQ copy. */
  originalMsgId: 'iot-original-msg-id',
  /** On a pack (`Subjects.normalizedPack`): how many messages it holds. */
  packSize: 'iot-pack-size',
  /** On a pack: how it is written (`msgpack`; `bytes` and absent (JSON): before MessagePack, still read). */
  packFormat: 'iot-pack-format',
} as const;

/** The headers of every message about one device: its tenant, the device, when the platform received it. */
export function deviceHeaders(tenant: string, device: string, receivedAt: number): Record<string, string> {
  return { [Headers.tenant]: tenant, [Headers.device]: device, [Headers.receivedAt]: String(receivedAt) };
}

/** Machine-readable DLQ reasons; the human detail travels in `iot-dlq-detail`. */
export const DlqReasons = {
  unknownDevice: 'unknown-device',
  invalidPayload: 'invalid-payload',
  unknownFormat: 'unknown-format',
  payloadTooLarge: 'payload-too-large',
  maxDeliveries: 'max-deliveries',
  rejected: 'rejected',
} as const;
export type DlqReason = (typeof DlqReasons)[keyof typeof DlqReasons];
