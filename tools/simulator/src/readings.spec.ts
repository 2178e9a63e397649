import { Validators } from '@iot/contracts';
import { deviceIds, SimulatedSensors, zenthosPayload } from './readings';

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
