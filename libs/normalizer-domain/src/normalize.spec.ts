import type { DecodedTelemetry } from '@iot/contracts';
import { applyRange, Normalizer } from './normalize';
import { specProblem } from './units';
import { DeadbandFilter } from './deadband';

const base: DecodedTelemetry = {
  tenant: 'demo',
  device: 'demo-0001',
  model: 'zenthos-esp32',
  messageId: 'm1',
  format: 'zenthos',
  ts: 1_000,
  receivedAt: 2_000,
  skewed: false,
  readings: [],
};

function newTestService() {
  return new Normalizer();
}

describe('Normalizer', () => {
  it('gives Zenthos readings their canonical units and good quality', () => {
    const sut = newTestService();
    const { telemetry, rejected } = sut.normalize({
      ...base,
      readings: [
        { metric: 'temperature', value: 21.3 },
        { metric: 'battery_voltage', value: 3.91 },
        { metric: 'signal_strength', value: -67 },
      ],
    });
    expect(rejected).toEqual([]);
    expect(telemetry).toEqual({
      tenant: 'demo',
      device: 'demo-0001',
      messageId: 'm1',
      ts: 1_000,
      receivedAt: 2_000,
      points: [
        { metric: 'temperature', value: 21.3, unit: 'Cel', quality: 'good' },
        { metric: 'battery_voltage', value: 3.91, unit: 'V', quality: 'good' },
        { metric: 'signal_strength', value: -67, unit: 'dB[mW]', quality: 'good' },
      ],
    });
  });

  it('converts degF to Cel and mV to V', () => {
    const { telemetry } = newTestService().normalize({
      ...base,
      model: 'generic',
      readings: [
        { metric: 'temperature', value: 70.5, unit: '[degF]' },
        { metric: 'supply_voltage', value: 3300, unit: 'mV' },
      ],
    });
    expect(telemetry.points).toEqual([
      { metric: 'temperature', value: 21.388888889, unit: 'Cel', quality: 'good' },
      { metric: 'supply_voltage', value: 3.3, unit: 'V', quality: 'good' },
    ]);
  });

  it('clamps a value just out of range and flags one far out of range without changing it', () => {
    const { telemetry } = newTestService().normalize({
      ...base,
      readings: [
        { metric: 'humidity', value: 102 },
        { metric: 'humidity', value: 180 },
      ],
    });
    expect(telemetry.points.map((p) => [p.value, p.quality])).toEqual([
      [100, 'clamped'],
      [180, 'out-of-range'],
    ]);
  });

  it('marks readings of a skewed clock as skewed', () => {
    const { telemetry } = newTestService().normalize({
      ...base,
      skewed: true,
      readings: [{ metric: 'temperature', value: 20 }],
    });
    expect(telemetry.points[0]!.quality).toBe('skewed');
  });

  it('rejects a reading whose unit does not convert, naming metric and unit, and keeps the others', () => {
    const { telemetry, rejected } = newTestService().normalize({
      ...base,
      readings: [
        { metric: 'temperature', value: 3, unit: 'V' },
        { metric: 'humidity', value: 50 },
      ],
    });
    expect(rejected).toEqual([
      { metric: 'temperature', reason: expect.stringContaining('metric "temperature" has unit "V"') },
    ]);
    expect(telemetry.points).toHaveLength(1);
  });

  it('keeps a metric the model does not know, as sent', () => {
    const { telemetry } = newTestService().normalize({
      ...base,
      readings: [{ metric: 'co2', value: 415, unit: '[ppm]' }],
    });
    expect(telemetry.points).toEqual([{ metric: 'co2', value: 415, unit: '[ppm]', quality: 'good' }]);
  });
});

describe('Normalizer with a deadband', () => {
  it('holds back unchanged battery and radio levels of a Zenthos device, never temperature', () => {
    const sut = new Normalizer(undefined, new DeadbandFilter());
    const msg = (ts: number, battery: number, temperature: number) =>
      sut.normalize({
        ...base,
        ts,
        readings: [
          { metric: 'battery_voltage', value: battery },
          { metric: 'temperature', value: temperature },
        ],
      });
    expect(msg(1_000, 3.91, 20).telemetry.points.map((x) => x.metric)).toEqual([
      'battery_voltage',
      'temperature',
    ]);
    const second = msg(2_000, 3.912, 20);
    expect(second.telemetry.points.map((x) => x.metric)).toEqual(['temperature']);
    expect(second.suppressed).toBe(1);
    expect(msg(3_000, 3.9, 20).telemetry.points.map((x) => x.metric)).toEqual([
      'battery_voltage',
      'temperature',
    ]);
  });
});

describe('applyRange', () => {
  it('is good on the bounds', () => {
    expect(applyRange(0, { unit: '%', min: 0, max: 100 })).toEqual({ value: 0, quality: 'good' });
    expect(applyRange(-0.5, { unit: '%', min: 0, max: 100, clampMargin: 1 })).toEqual({
      value: 0,
      quality: 'clamped',
    });
  });
});

describe('Normalizer with tenant profiles', () => {
  const adcProfile = {
    model: 'zenthos-esp32',
    metrics: {
      // A 12-bit ADC reading of soil moisture, 0..4095 counts to 0..100 %.
      soil_moisture: { unit: '%', sourceUnit: '{count}', scale: 100 / 4095, min: 0, max: 100 },
      temperature: { unit: 'Cel', sourceUnit: '[degF]', rename: 'air_temperature' },
    },
  };
  const sut = new Normalizer(undefined, undefined, (tenant, model) =>
    tenant === 'farm' && model === 'zenthos-esp32' ? adcProfile : undefined,
  );

  it("applies the tenant's profile to its own devices only", () => {
    const readings = [
      { metric: 'soil_moisture', value: 2047.5 },
      { metric: 'temperature', value: 68 },
      { metric: 'humidity', value: 50 },
    ];
    const farm = sut.normalize({ ...base, tenant: 'farm', readings }).telemetry.points;
    expect(farm).toEqual([
      { metric: 'soil_moisture', value: 50, unit: '%', quality: 'good' },
      { metric: 'air_temperature', value: 20, unit: 'Cel', quality: 'good' },
      // Metrics the tenant's profile does not name keep the built-in spec.
      { metric: 'humidity', value: 50, unit: '%', quality: 'good' },
    ]);
    const demo = sut.normalize({ ...base, tenant: 'demo', readings }).telemetry.points;
    expect(demo[0]).toEqual({ metric: 'soil_moisture', value: 2047.5, unit: '%', quality: 'out-of-range' });
    expect(demo[1]).toEqual({ metric: 'temperature', value: 68, unit: 'Cel', quality: 'good' });
  });
});

describe('specProblem', () => {
  it('names the metric and the units that do not convert', () => {
    expect(specProblem('pressure', { unit: 'Pa', sourceUnit: 'psi' })).toMatch(
      /metric "pressure": "psi" does not convert to "Pa"/,
    );
    expect(specProblem('pressure', { unit: 'Pa', sourceUnit: 'hPa' })).toBeUndefined();
    expect(specProblem('flow', { unit: 'm3/h' })).toBeUndefined();
  });
});
