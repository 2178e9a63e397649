import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { NO_CONTROL_CHARACTERS } from './validation';

/** A finite number: JSON.parse turns 1e400 into Infinity, which no sensor reports. */
const Finite = (opts: { description?: string } = {}) =>
  Type.Number({ minimum: -1e300, maximum: 1e300, ...opts });
const Id = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });
/** A metric's name, as readings, profiles and the table carry it. */
export const METRIC_NAME_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';
const MetricName = Type.String({ pattern: METRIC_NAME_PATTERN });
/** Free text a device sends (units, message ids, names): any characters but control ones. */
const Text = (opts: { minLength?: number; maxLength: number }) =>
  Type.String({ ...opts, pattern: NO_CONTROL_CHARACTERS });

// ---- Device payloads (what devices publish) ----

/** The Zenthos ESP32 payload on `zenthos/<model>/<device>/telemetry`; `timestamp` in epoch seconds. */
export const ZenthosTelemetrySchema = Type.Object(
  {
    message_id: Type.String({ format: 'uuid' }),
    device_id: Id,
    timestamp: Type.Integer({ minimum: 0, maximum: 1e11 }),
    sensors: Type.Object(
      {
        soil_moisture: Type.Optional(Finite()),
        temperature: Type.Optional(Finite()),
        humidity: Type.Optional(Finite()),
        light_level: Type.Optional(Finite()),
        battery_voltage: Type.Optional(Finite()),
      },
      { additionalProperties: false, minProperties: 1 },
    ),
    firmware_version: Type.Optional(Text({ maxLength: 32 })),
    signal_strength: Type.Optional(Finite()),
  },
  { additionalProperties: true },
);
export type ZenthosTelemetry = Static<typeof ZenthosTelemetrySchema>;

/**
 * One of two schemas chosen by the value's type (if/then/else) rather than tried in turn
 * (anyOf): Ajv builds an error object for each failed branch of anyOf even when the next one
 * matches (a canonical message with five `{value, unit}` readings: 0.95 against 0.53 µs), and
 * a refusal names the one branch the sender meant ("/readings/t/unit must match pattern").
 */
function byType<A extends TSchema, B extends TSchema>(
  type: 'object' | 'string',
  then: A,
  otherwise: B,
): TUnsafe<Static<A> | Static<B>> {
  return Type.Unsafe<Static<A> | Static<B>>({ if: { type }, then, else: otherwise });
}

/** A reading: a number, or an object with its value and unit. */
const Reading = byType(
  'object',
  Type.Object(
    { value: Finite(), unit: Text({ minLength: 1, maxLength: 32 }) },
    { additionalProperties: false },
  ),
  Finite(),
);
/** A device's time: ISO 8601 text, or epoch ms. */
const DeviceTime = byType(
  'string',
  Type.String({ format: 'date-time' }),
  Type.Integer({ minimum: 0, maximum: 1e14 }),
);

/** The platform's own payload on `devices/<device>/telemetry`; `ts` ISO 8601 or epoch ms. */
export const CanonicalTelemetrySchema = Type.Object(
  {
    message_id: Type.Optional(Text({ minLength: 1, maxLength: 128 })),
    ts: DeviceTime,
    readings: Type.Record(MetricName, Reading, { minProperties: 1 }),
  },
  { additionalProperties: true },
);
export type CanonicalTelemetry = Static<typeof CanonicalTelemetrySchema>;

/** One element of a gateway batch: a child device's readings, on the gateway's topic. */
export const GatewayBatchSchema = Type.Array(
  Type.Object(
    {
      device_id: Id,
      message_id: Type.Optional(Text({ minLength: 1, maxLength: 128 })),
      ts: DeviceTime,
      readings: Type.Record(MetricName, Reading, {
        minProperties: 1,
      }),
    },
    { additionalProperties: true },
  ),
  { minItems: 1, maxItems: 1000 },
);
export type GatewayBatch = Static<typeof GatewayBatchSchema>;

/** An RFC 8428 SenML JSON pack: base fields apply to the records that follow them. */
export const SenmlPackSchema = Type.Array(
  Type.Object(
    {
      bn: Type.Optional(Text({ maxLength: 256 })),
      bt: Type.Optional(Finite()),
      bu: Type.Optional(Text({ maxLength: 32 })),
      bv: Type.Optional(Finite()),
      bver: Type.Optional(Type.Integer()),
      n: Type.Optional(Text({ maxLength: 256 })),
      u: Type.Optional(Text({ maxLength: 32 })),
      v: Type.Optional(Finite()),
      vs: Type.Optional(Type.String()),
      vb: Type.Optional(Type.Boolean()),
      vd: Type.Optional(Type.String()),
      s: Type.Optional(Finite()),
      t: Type.Optional(Finite()),
      ut: Type.Optional(Finite()),
    },
    { additionalProperties: true },
  ),
  { minItems: 1, maxItems: 5000 },
);
export type SenmlPack = Static<typeof SenmlPackSchema>;

// ---- Pipeline payloads (between services) ----

export const DecodedReadingSchema = Type.Object({
  metric: Type.String(),
  value: Type.Number(),
  /** UCUM unit as sent by the device, when it said one. */
  unit: Type.Optional(Type.String()),
});

/** `iot.decoded.v1.<tenant>.<device>`: one device's readings of one message. */
export const DecodedTelemetrySchema = Type.Object({
  tenant: Type.String(),
  device: Type.String(),
  model: Type.String(),
  messageId: Type.String(),
  format: Type.Union([
    Type.Literal('zenthos'),
    Type.Literal('canonical'),
    Type.Literal('senml'),
    Type.Literal('gateway-batch'),
  ]),
  /** Event time from the device, epoch ms. */
  ts: Type.Number(),
  /** Ingest time at the bridge, epoch ms. */
  receivedAt: Type.Number(),
  /** The device clock is ahead of the bridge by more than the allowed skew. */
  skewed: Type.Boolean(),
  readings: Type.Array(DecodedReadingSchema),
});
export type DecodedTelemetry = Static<typeof DecodedTelemetrySchema>;
export type DecodedReading = Static<typeof DecodedReadingSchema>;

export const QualitySchema = Type.Union([
  Type.Literal('good'),
  Type.Literal('clamped'),
  Type.Literal('out-of-range'),
  Type.Literal('skewed'),
]);
export type Quality = Static<typeof QualitySchema>;

export const NormalizedPointSchema = Type.Object({
  metric: Type.String(),
  value: Type.Number(),
  unit: Type.String(),
  quality: QualitySchema,
});
export type NormalizedPoint = Static<typeof NormalizedPointSchema>;

/** `iot.normalized.v1.<tenant>.<device>`: canonical points of one device message. */
export const NormalizedTelemetrySchema = Type.Object({
  tenant: Type.String(),
  device: Type.String(),
  messageId: Type.String(),
  ts: Type.Number(),
  receivedAt: Type.Number(),
  points: Type.Array(NormalizedPointSchema),
});
export type NormalizedTelemetry = Static<typeof NormalizedTelemetrySchema>;

/** A device registry entry, kept in the `device-registry-v1` KV bucket under the device id. */
export const DeviceRecordSchema = Type.Object({
  device: Id,
  tenant: Id,
  model: Type.String({ minLength: 1, maxLength: 64 }),
  state: Type.Union([Type.Literal('active'), Type.Literal('disabled')]),
  /**
   * SHA-256 (hex) of each device key (`dev_ak_...`) that may send for this device over HTTP.
   * Keys are 256-bit random strings, so a fast hash is enough; the key itself is never stored.
   */
  key_hashes: Type.Optional(Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { maxItems: 16 })),
});
export type DeviceRecord = Static<typeof DeviceRecordSchema>;

/** `iot.cmd.v1.<tenant>.<device>`: a command for a device, sent to `devices/<device>/cmd`. */
export const DeviceCommandSchema = Type.Object(
  {
    command_id: Type.String({ minLength: 1, maxLength: 128 }),
    name: Type.String({ minLength: 1, maxLength: 64 }),
    params: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    /** Not delivered after this time (ISO 8601): a stale command is worse than none. */
    expires_at: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);
export type DeviceCommand = Static<typeof DeviceCommandSchema>;

/** `iot.events.v1.command.<tenant>.<device>`: what became of a command. */
export interface CommandResult {
  command_id: string;
  device: string;
  status: 'sent' | 'expired';
  at: string;
  detail?: string;
}

/** How one metric of a device model is made canonical (normalizer profiles). */
export const MetricSpecSchema = Type.Object(
  {
    /** Canonical unit (UCUM). */
    unit: Text({ minLength: 1, maxLength: 32 }),
    /** The unit the device sends when it names none (defaults to the canonical unit). */
    sourceUnit: Type.Optional(Text({ minLength: 1, maxLength: 32 })),
    scale: Type.Optional(Type.Number()),
    offset: Type.Optional(Type.Number()),
    /** Physically valid range in the canonical unit. */
    min: Type.Optional(Type.Number()),
    max: Type.Optional(Type.Number()),
    /** Values at most this far outside the range are clamped to it; further out they are kept and flagged. */
    clampMargin: Type.Optional(Type.Number({ minimum: 0 })),
    /** Store under this name. */
    rename: Type.Optional(MetricName),
    /** Deadband: a value within this distance of the last stored one is not stored again. */
    deadband: Type.Optional(Type.Number({ minimum: 0 })),
    /** With a deadband, still store at least this often (ms); default 15 minutes. */
    deadbandMaxSilenceMs: Type.Optional(Type.Integer({ minimum: 1000 })),
  },
  { additionalProperties: false },
);
export type MetricSpec = Static<typeof MetricSpecSchema>;

/**
 * A tenant's profile for one device model, kept in the `normalizer-profiles-v1` KV bucket
 * under `<tenant>.<model>`: its metrics override the built-in profile's, metric by metric.
 */
export const ModelProfileSchema = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
    metrics: Type.Record(MetricName, MetricSpecSchema),
  },
  { additionalProperties: false },
);
export type ModelProfile = Static<typeof ModelProfileSchema>;
