import fc from 'fast-check';
import { bridgeSubscriptions, parseDeviceTopic } from './topics';
import { messageIdOf } from './message-id';

describe('parseDeviceTopic', () => {
  it('maps the platform topics', () => {
    expect(parseDeviceTopic('devices/demo-0001/telemetry')).toEqual({
      device: 'demo-0001',
      kind: 'telemetry',
      format: 'canonical',
    });
    expect(parseDeviceTopic('devices/demo-0001/status')).toEqual({
      device: 'demo-0001',
      kind: 'status',
      format: 'canonical',
    });
  });

  it('maps the Zenthos compatibility topics with their model', () => {
    expect(parseDeviceTopic('zenthos/zenthos-esp32/demo-0001/telemetry')).toEqual({
      device: 'demo-0001',
      kind: 'telemetry',
      format: 'zenthos',
      model: 'zenthos-esp32',
    });
  });

  it('refuses topics it does not serve and device ids that would break a subject', () => {
    for (const t of [
      'devices/a/cmd',
      'devices/a.b/telemetry',
      'devices/*/telemetry',
      'devices//telemetry',
      'other/x/telemetry',
      'devices/a/telemetry/extra',
    ])
      expect(parseDeviceTopic(t)).toBeUndefined();
  });

  it('never throws on any topic string', () => {
    fc.assert(
      fc.property(fc.string(), (t) => {
        const r = parseDeviceTopic(t);
        return r === undefined || /^[A-Za-z0-9_-]+$/.test(r.device);
      }),
    );
  });

  it('subscribes in a shared group', () => {
    expect(bridgeSubscriptions('bridge')).toContain('$share/bridge/zenthos/+/+/telemetry');
    // Without a group, a single bridge subscribes plainly.
    expect(bridgeSubscriptions('')).toEqual([
      'devices/+/telemetry',
      'devices/+/status',
      'zenthos/+/+/telemetry',
      'zenthos/+/+/status',
    ]);
  });
});

describe('messageIdOf', () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  it("uses the device's message_id, scoped to the device", () => {
    expect(messageIdOf('d1', enc('{"message_id": "3f2b9c1e-8a4d", "x": 1}'))).toBe('d1:3f2b9c1e-8a4d');
  });
  it('hashes the payload when there is no message_id: equal payloads, equal ids', () => {
    const a = messageIdOf('d1', enc('{"ts": 1, "readings": {"t": 1}}'));
    expect(a).toMatch(/^d1:h:[0-9a-f]{40}$/);
    expect(messageIdOf('d1', enc('{"ts": 1, "readings": {"t": 1}}'))).toBe(a);
    expect(messageIdOf('d1', enc('{"ts": 2, "readings": {"t": 1}}'))).not.toBe(a);
    expect(messageIdOf('d2', enc('{"ts": 1, "readings": {"t": 1}}'))).not.toBe(a);
  });
  it('never throws on any bytes', () => {
    fc.assert(fc.property(fc.uint8Array(), (b) => typeof messageIdOf('d', b) === 'string'));
  });
});
