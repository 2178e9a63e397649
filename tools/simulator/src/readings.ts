import { randomUUID } from 'node:crypto';

/** A device's sensors drifting slowly, as soil and air do, within the Zenthos ranges. */
export class SimulatedSensors {
  private soil = 30 + Math.random() * 20;
  private temp = 15 + Math.random() * 10;
  private hum = 50 + Math.random() * 20;
  private light = 5_000 + Math.random() * 20_000;
  private battery = 3.7 + Math.random() * 0.4;

  next() {
    const walk = (v: number, step: number, min: number, max: number) =>
      Math.min(max, Math.max(min, v + (Math.random() - 0.5) * step));
    this.soil = walk(this.soil, 0.5, 0, 100);
    this.temp = walk(this.temp, 0.2, -20, 50);
    this.hum = walk(this.hum, 0.5, 0, 100);
    this.light = walk(this.light, 500, 0, 120_000);
    this.battery = walk(this.battery, 0.002, 3.3, 4.2);
    const r = (v: number, d: number) => Math.round(v * 10 ** d) / 10 ** d;
    return {
      soil_moisture: r(this.soil, 1),
      temperature: r(this.temp, 1),
      humidity: r(this.hum, 1),
      light_level: Math.round(this.light),
      battery_voltage: r(this.battery, 2),
    };
  }
}

/** One Zenthos telemetry payload with a unique message id and the current time. */
export function zenthosPayload(device: string, sensors: SimulatedSensors, nowMs = Date.now()) {
  return {
    message_id: randomUUID(),
    device_id: device,
    timestamp: Math.floor(nowMs / 1000),
    sensors: sensors.next(),
    firmware_version: '1.4.2',
    signal_strength: -60 - Math.round(Math.random() * 20),
  };
}

/** Device ids `<prefix>0001` ... for `count` devices starting at `first`. */
export function deviceIds(prefix: string, count: number, first = 1): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(first + i).padStart(4, '0')}`);
}

/** One canonical telemetry payload: millisecond time, five sensors with their units. */
export function canonicalPayload(sensors: SimulatedSensors, nowMs = Date.now()) {
  const s = sensors.next();
  return {
    message_id: randomUUID(),
    ts: nowMs,
    readings: {
      soil_moisture: { value: s.soil_moisture, unit: '%' },
      temperature: { value: s.temperature, unit: 'Cel' },
      humidity: { value: s.humidity, unit: '%' },
      light_level: { value: s.light_level, unit: 'lx' },
      battery_voltage: { value: s.battery_voltage, unit: 'V' },
    },
  };
}

/**
 * How many messages are due by `elapsedMs` at `ratePerS`, less those sent: the generator
 * catches up after a slow tick instead of drifting below the rate.
 */
/**
 * When message `n` (from 0) was due, in ms after the start: the time it carries. A message
 * sent late (a slow tick, a busy machine) keeps the time it was due, so a benchmark counts
 * the generator's own delay as latency instead of leaving it out (coordinated omission).
 */
export function dueAtMs(ratePerS: number, n: number): number {
  return Math.floor(((n + 1) * 1000) / ratePerS);
}

export function dueMessages(ratePerS: number, elapsedMs: number, sent: number, limit = Infinity): number {
  return Math.max(0, Math.min(limit, Math.floor((ratePerS * elapsedMs) / 1000)) - sent);
}
