import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { PayloadValidationError } from '@iot/contracts';
import { decodeRaw, detectFormat, type DeviceDirectory, type RawEnvelope } from './decode';

const fixture = (name: string) => readFileSync(join(__dirname, 'fixtures', name));
const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const opts = { maxFutureSkewMs: 5 * 60_000, defaultModel: 'generic' };
/** What `f` throws, or undefined if it returns. */
const thrownBy = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
};
const now = Date.UTC(2026, 10, 23, 9, 0, 0);
const registry: Record<string, { tenant: string; model: string; state: string }> = {
  'demo-0002': { tenant: 'demo', model: 'generic', state: 'active' },
  'demo-0003': { tenant: 'demo', model: 'soil-probe', state: 'active' },
  'other-0001': { tenant: 'other', model: 'generic', state: 'active' },
};
const directory: DeviceDirectory = { get: (d) => registry[d] };
const zenthosEnv: RawEnvelope = {
  tenant: 'demo',
  device: 'demo-0001',
  sourceTopic: 'zenthos/zenthos-esp32/demo-0001/telemetry',
  msgId: 'demo-0001:x',
  receivedAt: now,
};

describe('detectFormat', () => {
  it('takes the format from the topic', () => {
    expect(detectFormat('zenthos/m1/d/telemetry')).toEqual({ format: 'zenthos', model: 'm1' });
    expect(detectFormat('devices/d/telemetry')).toEqual({ format: 'canonical' });
    expect(detectFormat('elsewhere/d')).toBeUndefined();
  });

  it('refuses a known prefix with the wrong number of levels', () => {
    expect(detectFormat('devices/d/telemetry/extra')).toBeUndefined();
    expect(detectFormat('devices/')).toBeUndefined();
    expect(detectFormat('zenthos/m1/d')).toBeUndefined();
    expect(detectFormat('zenthos/m1/d/telemetry/extra')).toBeUndefined();
    expect(detectFormat('zenthosx/m1/d/telemetry')).toBeUndefined();
  });
});

describe('decodeRaw: Zenthos', () => {
  it('decodes the Zenthos payload: epoch seconds to ms, every sensor and the signal strength', () => {
    const sut = sutFor(zenthosEnv);
    const d = sut(fixture('zenthos-telemetry.json'));
    expect(d).toMatchObject({
      tenant: 'demo',
      device: 'demo-0001',
      model: 'zenthos-esp32',
      messageId: '3f2b9c1e-8a4d-4f6b-9e2a-1c5d7e9f0a12',
      format: 'zenthos',
      ts: 1763888400_000,
      receivedAt: now,
      skewed: false,
    });
    expect(d.readings).toEqual([
      { metric: 'soil_moisture', value: 42.5 },
      { metric: 'temperature', value: 21.3 },
      { metric: 'humidity', value: 64.0 },
      { metric: 'light_level', value: 18250 },
      { metric: 'battery_voltage', value: 3.91 },
      { metric: 'signal_strength', value: -67 },
    ]);
  });

  it('flags a device clock ahead of the bridge beyond the bound, without dropping it', () => {
    const payload = JSON.parse(fixture('zenthos-telemetry.json').toString());
    payload.timestamp = Math.floor(now / 1000) + 6 * 60;
    expect(sutFor(zenthosEnv)(enc(payload)).skewed).toBe(true);
    payload.timestamp = Math.floor(now / 1000) + 4 * 60;
    expect(sutFor(zenthosEnv)(enc(payload)).skewed).toBe(false);
  });

  it('refuses a payload naming another device than the one that sent it', () => {
    const payload = { ...JSON.parse(fixture('zenthos-telemetry.json').toString()), device_id: 'demo-0002' };
    expect(() => sutFor(zenthosEnv)(enc(payload))).toThrow(/\/device_id.*demo-0002.*demo-0001/);
  });

  it('rejects each invalid fixture with an error naming the field and rule', () => {
    const lines = fixture('invalid-payloads.jsonl').toString().split('\n').filter(Boolean);
    const expected = [
      ['/message_id', 'format'],
      ['/timestamp', 'type'],
      ['/sensors/temperature', 'type'],
      ['/sensors', 'required'],
      ['/message_id', 'required'],
      ['', 'json'],
    ];
    expect(lines).toHaveLength(expected.length);
    lines.forEach((line, i) => {
      const err = thrownBy(() => sutFor(zenthosEnv)(enc(line)));
      expect(err).toBeInstanceOf(PayloadValidationError);
      const [field, rule] = expected[i]!;
      expect({
        field: (err as PayloadValidationError).field,
        rule: (err as PayloadValidationError).rule,
      }).toEqual({ field, rule });
    });
  });

  it('rejects a reading of 1e400 (Infinity after JSON.parse)', () => {
    const payload =
      '{"message_id":"3f2b9c1e-8a4d-4f6b-9e2a-1c5d7e9f0a12","device_id":"demo-0001","timestamp":1763888400,"sensors":{"temperature":1e400}}';
    expect(() => sutFor(zenthosEnv)(enc(payload))).toThrow(/\/sensors\/temperature/);
  });
});

describe('decodeRaw: canonical', () => {
  const env = { ...zenthosEnv, sourceTopic: 'devices/demo-0001/telemetry' };
  it('decodes ISO time and readings with or without units', () => {
    const d = sutFor(env)(fixture('canonical-telemetry.json'));
    expect(d).toMatchObject({
      format: 'canonical',
      model: 'generic',
      ts: Date.parse('2026-11-23T09:00:00.250Z'),
      messageId: 'c0ffee00-1234-4abc-9def-0123456789ab',
    });
    expect(d.readings).toEqual([
      { metric: 'temperature', value: 70.5, unit: '[degF]' },
      { metric: 'supply_voltage', value: 3300, unit: 'mV' },
      { metric: 'humidity', value: 55.2 },
    ]);
  });
  it('accepts epoch milliseconds and keeps the bridge id when there is no message_id', () => {
    const d = sutFor(env)(enc({ ts: 1763888400123, readings: { t: 1 } }));
    expect(d.ts).toBe(1763888400123);
    expect(d.messageId).toBe('demo-0001:x');
  });
  // PostgreSQL refuses a NUL in text and a NATS header a line break: such a unit or id would
  // fail the writer or the publish, far from the device; it is refused here, naming the field.
  it.each([
    [
      'a NUL in a unit',
      { ts: 1763888400123, readings: { t: { value: 1, unit: 'C\u0000' } } },
      '/readings/t/unit',
    ],
    [
      'a line break in a message id',
      { message_id: 'a\r\nb', ts: 1763888400123, readings: { t: 1 } },
      '/message_id',
    ],
    [
      'a tab in a unit',
      { ts: 1763888400123, readings: { t: { value: 1, unit: 'm\ts' } } },
      '/readings/t/unit',
    ],
  ])('refuses %s, naming the field', (_, payload, field) => {
    const err = thrownBy(() => sutFor(env)(enc(payload)));
    expect(err).toBeInstanceOf(PayloadValidationError);
    expect((err as PayloadValidationError).field).toBe(field);
    expect((err as Error).message).toMatch(/control character .*send printable text/);
  });
  it.each([
    ['a reading in text', { ts: 1763888400123, readings: { t: '21.5' } }, '/readings/t', 'must be number'],
    [
      'a reading without its unit',
      { ts: 1763888400123, readings: { t: { value: 1 } } },
      '/readings/t/unit',
      'is missing required property "unit"',
    ],
    ['a time before 1970', { ts: -1, readings: { t: 1 } }, '/ts', 'must be >= 0'],
    ['a time that is no date', { ts: 'soon', readings: { t: 1 } }, '/ts', 'must match format "date-time"'],
  ])('refuses %s with the one error of the form the sender meant', (_, payload, field, detail) => {
    const err = thrownBy(() => sutFor(env)(enc(payload)));
    expect(err).toBeInstanceOf(PayloadValidationError);
    expect((err as PayloadValidationError).field).toBe(field);
    expect((err as Error).message).toContain(detail);
  });
  it('keeps units in any script: only control characters are refused', () => {
    const d = sutFor(env)(
      enc({
        ts: 1763888400123,
        readings: { t: { value: 1, unit: '°C' }, p: { value: 2, unit: 'мм рт. ст.' } },
      }),
    );
    expect(d.readings.map((r) => r.unit)).toEqual(['°C', 'мм рт. ст.']);
  });
});

describe('decodeRaw: SenML (RFC 8428)', () => {
  const env = {
    ...zenthosEnv,
    device: 'demo-0002',
    sourceTopic: 'devices/demo-0002/telemetry',
    msgId: 'demo-0002:h:abc',
  };
  it('resolves base name, base time and base unit into readings per time', () => {
    const r = decodeRaw(fixture('senml-pack.json'), env, opts, directory);
    expect(r.rejected).toEqual([]);
    expect(
      r.outputs.map((o) => ({
        msgId: o.msgId,
        ts: o.telemetry.ts,
        format: o.telemetry.format,
        readings: o.telemetry.readings,
      })),
    ).toEqual([
      {
        msgId: 'demo-0002:h:abc:demo-0002:1763888400000',
        ts: 1763888400_000,
        format: 'senml',
        readings: [
          { metric: 'temperature', value: 21.7, unit: 'Cel' },
          { metric: 'humidity', value: 61.0, unit: '%RH' },
          { metric: 'battery_voltage', value: 3.88, unit: 'V' },
        ],
      },
      {
        msgId: 'demo-0002:h:abc:demo-0002:1763888460000',
        ts: 1763888460_000,
        format: 'senml',
        readings: [{ metric: 'temperature', value: 21.9, unit: 'Cel' }],
      },
    ]);
  });

  it('adds the base value and takes small times as relative to now', () => {
    const pack = [{ bn: 'urn:dev:demo-0002:', bv: 100, n: 'level', v: 5, t: -10 }];
    const [o] = decodeRaw(enc(pack), env, opts, directory).outputs;
    expect(o!.telemetry.readings).toEqual([{ metric: 'level', value: 105 }]);
    expect(o!.telemetry.ts).toBe(now - 10_000);
    expect(o!.msgId).toBe('demo-0002:h:abc');
  });

  it('refuses a record without a numeric value, naming it', () => {
    expect(() => decodeRaw(enc([{ n: 'label', vs: 'hello' }]), env, opts, directory)).toThrow(
      /SenML pack: field \/0 has no numeric value/,
    );
  });
  it('refuses a base unit with a NUL, naming the record and field', () => {
    expect(() =>
      decodeRaw(enc([{ bn: 'demo-0002:', bu: 'C\u0000', n: 't', v: 1 }]), env, opts, directory),
    ).toThrow(/SenML pack: field \/0\/bu holds a control character/);
  });
});

describe('decodeRaw: gateway batch', () => {
  const env = { ...zenthosEnv, device: 'gw-1', sourceTopic: 'devices/gw-1/telemetry', msgId: 'gw-1:h:1' };
  it("splits a gateway's message into its children's readings, with their models and message ids", () => {
    const r = decodeRaw(fixture('gateway-batch.json'), env, opts, directory);
    expect(r.rejected).toEqual([
      {
        device: 'demo-0004',
        reason: 'unknown-device',
        detail: expect.stringContaining(
          '"demo-0004" in a gateway-batch message from "gw-1" is not an active device of tenant "demo"',
        ),
      },
    ]);
    expect(r.outputs).toEqual([
      {
        msgId: 'demo-0003:0b6a2f7e-1d3c-4e5f-8a9b-112233445566',
        telemetry: expect.objectContaining({
          tenant: 'demo',
          device: 'demo-0003',
          model: 'soil-probe',
          format: 'gateway-batch',
          ts: 1763888400000,
          readings: [
            { metric: 'soil_moisture', value: 38.1 },
            { metric: 'temperature', value: 20.9 },
          ],
        }),
      },
    ]);
  });

  it("never lets a gateway write into another tenant's device", () => {
    const batch = [{ device_id: 'other-0001', ts: 1, readings: { t: 1 } }];
    const r = decodeRaw(enc(batch), env, opts, directory);
    expect(r.outputs).toEqual([]);
    expect(r.rejected[0]!.device).toBe('other-0001');
  });
});

describe('decodeRaw on arbitrary input', () => {
  const outcomeIsValueOrTypedError = (bytes: Uint8Array, topic: string) => {
    try {
      const r = decodeRaw(bytes, { ...zenthosEnv, sourceTopic: topic }, opts, directory);
      return r.outputs.every(
        ({ telemetry: d }) => Number.isFinite(d.ts) && d.readings.every((x) => Number.isFinite(x.value)),
      );
    } catch (e) {
      return e instanceof PayloadValidationError;
    }
  };
  const topics = fc.constantFrom(
    'zenthos/zenthos-esp32/demo-0001/telemetry',
    'devices/demo-0001/telemetry',
    'x/y',
  );
  it('arbitrary bytes give a value or a PayloadValidationError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), topics, outcomeIsValueOrTypedError), {
      numRuns: 500,
    });
  });
  it('arbitrary JSON gives a value or a PayloadValidationError', () => {
    fc.assert(
      fc.property(fc.json(), topics, (j, t) => outcomeIsValueOrTypedError(enc(j), t)),
      { numRuns: 500 },
    );
  });
});

/** Decodes a single-device message and returns its one output's telemetry. */
function sutFor(env: RawEnvelope) {
  return (bytes: Uint8Array) => {
    const r = decodeRaw(bytes, env, opts, directory);
    expect(r.outputs).toHaveLength(1);
    return r.outputs[0]!.telemetry;
  };
}
