import { Validators } from '@iot/contracts';
import {
  canonicalPayload,
  deviceIds,
  dueAtMs,
  dueMessages,
  SimulatedSensors,
  zenthosPayload,
} from './readings';

describe('simulated devices', () => {
  it('name devices like the seeded registry', () => {
    expect(deviceIds('demo-', 3)).toEqual(['demo-0001', 'demo-0002', 'demo-0003']);
    expect(deviceIds('demo-', 2, 101)).toEqual(['demo-0101', 'demo-0102']);
  });

  it('send payloads the Zenthos schema accepts, each with its own message id', () => {
    const sensors = new SimulatedSensors();
    const a = zenthosPayload('demo-0001', sensors, Date.UTC(2026, 10, 23));
    const b = zenthosPayload('demo-0001', sensors);
    expect(Validators.zenthosTelemetry.is(a)).toBe(true);
    expect(a.timestamp).toBe(Date.UTC(2026, 10, 23) / 1000);
    expect(a.message_id).not.toBe(b.message_id);
  });
});

describe('canonical payloads and pacing', () => {
  it('sends canonical payloads with millisecond time and five sensors the schema accepts', () => {
    const p = canonicalPayload(new SimulatedSensors(), 1_764_000_000_123);
    expect(Validators.canonicalTelemetry.is(p)).toBe(true);
    expect(p.ts).toBe(1_764_000_000_123);
    expect(Object.keys(p.readings)).toHaveLength(5);
  });

  it('keeps the rate by catching up after a slow tick, and stops at the message limit', () => {
    expect(dueMessages(10_000, 5, 0)).toBe(50);
    expect(dueMessages(10_000, 100, 50)).toBe(950);
    expect(dueMessages(10_000, 100, 1000)).toBe(0);
    expect(dueMessages(10_000, 1_000, 0, 300)).toBe(300);
  });

  it('stamps each message with the time it was due, not the time a late tick sent it', () => {
    // 5,000 msg/s: one message every 0.2 ms; a tick 100 ms late sends 500 due over that time.
    expect(dueAtMs(5_000, 0)).toBe(0);
    expect(dueAtMs(5_000, 4)).toBe(1);
    expect(dueAtMs(5_000, 499)).toBe(100);
    // Every message due by a tick is stamped no later than the tick.
    for (const elapsed of [5, 17, 1_000])
      expect(dueAtMs(5_000, dueMessages(5_000, elapsed, 0) - 1)).toBeLessThanOrEqual(elapsed);
  });
});
