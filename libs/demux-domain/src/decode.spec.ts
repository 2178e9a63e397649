import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { PayloadValidationError } from '@iot/contracts';
import { decodeRaw, detectFormat, type RawEnvelope } from './decode';

const fixture = (name: string) => readFileSync(join(__dirname, 'fixtures', name));
const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const opts = { maxFutureSkewMs: 5 * 60_000, defaultModel: 'generic' };
const now = Date.UTC(2026, 10, 23, 9, 0, 0);
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
      let err: unknown;
      try {
        sutFor(zenthosEnv)(enc(line));
      } catch (e) {
        err = e;
      }
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
});

describe('decodeRaw on arbitrary input', () => {
  const outcomeIsValueOrTypedError = (bytes: Uint8Array, topic: string) => {
    try {
      const d = sutFor({ ...zenthosEnv, sourceTopic: topic })(bytes);
      return Number.isFinite(d.ts) && d.readings.every((r) => Number.isFinite(r.value));
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

function sutFor(env: RawEnvelope) {
  return (bytes: Uint8Array) => decodeRaw(bytes, env, opts);
}
