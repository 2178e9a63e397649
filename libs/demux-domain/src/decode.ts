import {
  METRIC_NAME_PATTERN,
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
  // Read by position, not split: this runs for every message.
  if (sourceTopic.startsWith('devices/')) return levels(sourceTopic) === 3 ? CANONICAL : undefined;
  if (sourceTopic.startsWith('zenthos/') && levels(sourceTopic) === 4)
    return { format: 'zenthos', model: sourceTopic.slice(8, sourceTopic.indexOf('/', 8)) };
  return undefined;
}

const CANONICAL = Object.freeze({ format: 'canonical' as const });

/** The number of levels of an MQTT topic (`a/b/c` has 3). */
function levels(topic: string): number {
  let n = 1;
  for (let at = topic.indexOf('/'); at >= 0; at = topic.indexOf('/', at + 1)) n++;
  return n;
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

/** The registry as demux sees it: a child device of a gateway must be registered in its tenant. */
export interface DeviceDirectory {
  get(device: string): { tenant: string; model: string; state: string } | undefined;
}

export interface DecodedOutput {
  /** `Nats-Msg-Id` of the decoded message: stable across redeliveries of the raw one. */
  msgId: string;
  telemetry: DecodedTelemetry;
}

export interface RejectedPart {
  device: string;
  reason: 'unknown-device';
  detail: string;
}

export interface DecodeResult {
  outputs: DecodedOutput[];
  /** Parts of a gateway message that could not be taken; the rest goes on. */
  rejected: RejectedPart[];
}

interface Group {
  device: string;
  ts: number;
  messageId?: string;
  readings: DecodedReading[];
}

const toMs = (ts: string | number) => (typeof ts === 'number' ? ts : Date.parse(ts));
function readingsOf(r: Record<string, number | { value: number; unit: string }>): DecodedReading[] {
  const out: DecodedReading[] = [];
  for (const metric in r) {
    const v = r[metric]!;
    out.push(typeof v === 'number' ? { metric, value: v } : { metric, value: v.value, unit: v.unit });
  }
  return out;
}

/**
 * Decodes one raw device message into the readings of each device and time it carries.
 * Throws only {@link PayloadValidationError}, naming the field and the rule, when the
 * message as a whole is invalid; a gateway's reading for an unregistered child device is
 * returned in `rejected` while the others go on.
 */
export function decodeRaw(
  bytes: Uint8Array,
  env: RawEnvelope,
  opts: DecodeOptions,
  directory?: DeviceDirectory,
): DecodeResult {
  const detected = detectFormat(env.sourceTopic);
  if (!detected)
    throw new PayloadValidationError(
      'raw message',
      '',
      'format',
      `arrived on topic "${env.sourceTopic}", which names no known payload format`,
    );
  let format: DecodedTelemetry['format'];
  let groups: Group[];
  if (detected.format === 'zenthos') {
    format = 'zenthos';
    groups = [decodeZenthos(bytes, env)];
  } else {
    const value = parseJson('device payload', bytes);
    if (Array.isArray(value)) {
      const first = value[0] as Record<string, unknown> | undefined;
      if (first && typeof first === 'object' && 'device_id' in first) {
        format = 'gateway-batch';
        Validators.gatewayBatch.assert(value);
        groups = value.map((e) => ({
          device: e.device_id,
          ts: toMs(e.ts),
          messageId: e.message_id,
          readings: readingsOf(e.readings),
        }));
      } else {
        format = 'senml';
        Validators.senmlPack.assert(value);
        groups = resolveSenml(value, env);
      }
    } else {
      format = 'canonical';
      Validators.canonicalTelemetry.assert(value);
      groups = [
        {
          device: env.device,
          ts: toMs(value.ts),
          messageId: value.message_id,
          readings: readingsOf(value.readings),
        },
      ];
    }
  }

  const outputs: DecodedOutput[] = [];
  const rejected: RejectedPart[] = [];
  const single = groups.length === 1 && groups[0]!.device === env.device;
  for (const g of groups) {
    let model = detected.model ?? opts.defaultModel;
    if (g.device !== env.device) {
      const child = directory?.get(g.device);
      if (!child || child.tenant !== env.tenant || child.state !== 'active') {
        rejected.push({
          device: g.device,
          reason: 'unknown-device',
          detail: `device "${g.device}" in a ${format} message from "${env.device}" is not an active device of tenant "${env.tenant}": register it, then replay`,
        });
        continue;
      }
      model = child.model;
    }
    const msgId = single
      ? env.msgId
      : g.messageId && format === 'gateway-batch'
        ? `${g.device}:${g.messageId}`
        : `${env.msgId}:${g.device}:${g.ts}`;
    outputs.push({
      msgId,
      telemetry: {
        tenant: env.tenant,
        device: g.device,
        receivedAt: env.receivedAt,
        model,
        messageId: g.messageId ?? msgId,
        format,
        ts: g.ts,
        skewed: g.ts - env.receivedAt > opts.maxFutureSkewMs,
        readings: g.readings,
      },
    });
  }
  return { outputs, rejected };
}

function decodeZenthos(bytes: Uint8Array, env: RawEnvelope): Group {
  const value = parseJson(Validators.zenthosTelemetry.name, bytes);
  Validators.zenthosTelemetry.assert(value);
  if (value.device_id !== env.device)
    throw new PayloadValidationError(
      Validators.zenthosTelemetry.name,
      '/device_id',
      'identity',
      `is "${value.device_id}" but the message came from device "${env.device}": a device publishes only its own readings`,
    );
  const readings: DecodedReading[] = Object.entries(value.sensors).map(([metric, v]) => ({
    metric,
    value: v as number,
  }));
  if (value.signal_strength !== undefined)
    readings.push({ metric: 'signal_strength', value: value.signal_strength });
  return { device: env.device, ts: value.timestamp * 1000, messageId: value.message_id, readings };
}

const SENML_DEVICE_NAME = /^urn:dev:([A-Za-z0-9_-]{1,64}):(.*)$/;
const METRIC = new RegExp(METRIC_NAME_PATTERN);
// RFC 8428 4.5.3: times below 2**28 are relative to now.
const SENML_RELATIVE_LIMIT = 2 ** 28;

/** Resolves a SenML pack (base name, time, unit, value) into groups per device and time. */
function resolveSenml(pack: import('@iot/contracts').SenmlPack, env: RawEnvelope): Group[] {
  const schema = Validators.senmlPack.name;
  let bn = '';
  let bt = 0;
  let bu: string | undefined;
  let bv = 0;
  const groups = new Map<string, Group>();
  pack.forEach((r, i) => {
    if (r.bn !== undefined) bn = r.bn;
    if (r.bt !== undefined) bt = r.bt;
    if (r.bu !== undefined) bu = r.bu;
    if (r.bv !== undefined) bv = r.bv;
    const name = bn + (r.n ?? '');
    if (!name)
      throw new PayloadValidationError(
        schema,
        `/${i}/n`,
        'required',
        'has no name: set n, or bn in an earlier record',
      );
    const m = SENML_DEVICE_NAME.exec(name);
    const device = m ? m[1]! : env.device;
    const metric = m ? m[2]! : name;
    if (!METRIC.test(metric))
      throw new PayloadValidationError(
        schema,
        `/${i}/n`,
        'pattern',
        `names metric "${metric}": use 1-64 letters, digits, "_", "." or "-"`,
      );
    let value: number;
    if (r.v !== undefined) value = bv + r.v;
    else if (r.vb !== undefined) value = r.vb ? 1 : 0;
    else if (r.s !== undefined) value = r.s;
    else
      throw new PayloadValidationError(
        schema,
        `/${i}`,
        'senml-value',
        'has no numeric value (v, vb or s): string and data values are not stored',
      );
    let time = bt + (r.t ?? 0);
    if (time < SENML_RELATIVE_LIMIT) time = env.receivedAt / 1000 + time;
    const ts = Math.round(time * 1000);
    const key = `${device}\n${ts}`;
    const group = groups.get(key) ?? { device, ts, readings: [] };
    group.readings.push({ metric, value, ...((r.u ?? bu) ? { unit: (r.u ?? bu)! } : {}) });
    groups.set(key, group);
  });
  return [...groups.values()];
}
