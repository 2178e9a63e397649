import {
  PayloadValidationError,
  Validators,
  type DecodedReading,
  type DecodedTelemetry,
} from '@iot/contracts';

export type PayloadFormat = 'zenthos' | 'canonical';

/** What demux knows of a raw message besides its bytes (from headers set by the bridge). */
export interface RawEnvelope {
  tenant: string;
  device: string;
  /** The MQTT topic: `zenthos/<model>/<device>/telemetry` or `devices/<device>/telemetry`. */
  sourceTopic: string;
  msgId: string;
  receivedAt: number;
}

export interface DecodeOptions {
  /** Device timestamps further ahead of the bridge's clock than this are flagged `skewed`. */
  maxFutureSkewMs: number;
  /** The device model when the topic does not say it (from the registry). */
  defaultModel: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Which decoder a topic calls for; the topic, not the payload, decides it. */
export function detectFormat(sourceTopic: string): { format: PayloadFormat; model?: string } | undefined {
  const parts = sourceTopic.split('/');
  if (parts[0] === 'zenthos' && parts.length === 4) return { format: 'zenthos', model: parts[1] };
  if (parts[0] === 'devices' && parts.length === 3) return { format: 'canonical' };
  return undefined;
}

function parseJson(schema: string, bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new PayloadValidationError(schema, '', 'encoding', 'is not valid UTF-8: send JSON text');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new PayloadValidationError(
      schema,
      '',
      'json',
      `is not valid JSON (${(e as Error).message}): send one JSON object`,
    );
  }
}

/**
 * Decodes one raw device message into the readings of one device. Throws only
 * {@link PayloadValidationError}, naming the field and the rule, for anything else.
 */
export function decodeRaw(bytes: Uint8Array, env: RawEnvelope, opts: DecodeOptions): DecodedTelemetry {
  const detected = detectFormat(env.sourceTopic);
  if (!detected)
    throw new PayloadValidationError(
      'raw message',
      '',
      'format',
      `arrived on topic "${env.sourceTopic}", which names no known payload format`,
    );
  const base = { tenant: env.tenant, device: env.device, receivedAt: env.receivedAt };
  let ts: number;
  let readings: DecodedReading[];
  let messageId = env.msgId;
  if (detected.format === 'zenthos') {
    const value = parseJson(Validators.zenthosTelemetry.name, bytes);
    Validators.zenthosTelemetry.assert(value);
    if (value.device_id !== env.device)
      throw new PayloadValidationError(
        Validators.zenthosTelemetry.name,
        '/device_id',
        'identity',
        `is "${value.device_id}" but the message came from device "${env.device}": a device publishes only its own readings`,
      );
    ts = value.timestamp * 1000;
    messageId = value.message_id;
    readings = Object.entries(value.sensors).map(([metric, v]) => ({ metric, value: v as number }));
    if (value.signal_strength !== undefined)
      readings.push({ metric: 'signal_strength', value: value.signal_strength });
  } else {
    const value = parseJson(Validators.canonicalTelemetry.name, bytes);
    Validators.canonicalTelemetry.assert(value);
    ts = typeof value.ts === 'number' ? value.ts : Date.parse(value.ts);
    if (value.message_id) messageId = value.message_id;
    readings = Object.entries(value.readings).map(([metric, r]) =>
      typeof r === 'number' ? { metric, value: r } : { metric, value: r.value, unit: r.unit },
    );
  }
  return {
    ...base,
    model: detected.model ?? opts.defaultModel,
    messageId,
    format: detected.format,
    ts,
    skewed: ts - env.receivedAt > opts.maxFutureSkewMs,
    readings,
  };
}
