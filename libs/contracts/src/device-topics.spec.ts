import { bridgeMayAccess, deviceMayAccess, mosquittoAcl } from './device-topics';

describe('device topic policy', () => {
  it('lets a device publish its own telemetry and status, also under the Zenthos topics', () => {
    for (const t of [
      'devices/d1/telemetry',
      'devices/d1/status',
      'zenthos/esp32/d1/telemetry',
      'zenthos/esp32/d1/status',
    ])
      expect(deviceMayAccess('d1', t, 'publish')).toBe(true);
  });

  it("refuses a device another device's topics, wildcards and anything else", () => {
    for (const t of [
      'devices/d2/telemetry',
      'zenthos/esp32/d2/telemetry',
      'devices/+/telemetry',
      'devices/d1/cmd',
      'devices/d1/telemetry/extra',
      'devices/d1',
      '#',
    ])
      expect(deviceMayAccess('d1', t, 'publish')).toBe(false);
    for (const t of ['devices/d2/cmd', 'devices/+/cmd', 'devices/d1/#', 'devices/d1/telemetry', '#'])
      expect(deviceMayAccess('d1', t, 'subscribe')).toBe(false);
  });

  it('lets a device subscribe to its own commands and configuration only', () => {
    expect(deviceMayAccess('d1', 'devices/d1/cmd', 'subscribe')).toBe(true);
    expect(deviceMayAccess('d1', 'devices/d1/config', 'subscribe')).toBe(true);
  });

  it('refuses an identity that could not be a device id', () => {
    expect(deviceMayAccess('+', 'devices/+/telemetry', 'publish')).toBe(false);
    expect(deviceMayAccess('a/b', 'devices/a/b/telemetry', 'publish')).toBe(false);
  });

  it("lets the bridge read every device's uplink (shared or not) and write downlink only", () => {
    expect(bridgeMayAccess('devices/+/telemetry', 'subscribe')).toBe(true);
    expect(bridgeMayAccess('$share/bridge/zenthos/+/+/status', 'subscribe')).toBe(true);
    expect(bridgeMayAccess('devices/d9/cmd', 'publish')).toBe(true);
    expect(bridgeMayAccess('#', 'subscribe')).toBe(false);
    expect(bridgeMayAccess('devices/d9/telemetry', 'publish')).toBe(false);
    expect(bridgeMayAccess('devices/+/cmd', 'publish')).toBe(false);
  });

  it('renders the same rules as a mosquitto ACL, with the bridge account only where asked', () => {
    const tls = mosquittoAcl('%u');
    expect(tls).toContain('pattern write devices/%u/telemetry');
    expect(tls).toContain('pattern read devices/%u/cmd');
    expect(tls).not.toMatch(/^user /m);
    const plain = mosquittoAcl('%c', 'iot-bridge');
    expect(plain).toMatch(/^user iot-bridge\ntopic read devices\/\+\/telemetry$/m);
    expect(plain).toContain('topic write devices/+/cmd');
    expect(plain).toContain('pattern write zenthos/+/%c/status');
    expect(() => mosquittoAcl('%u', 'bad name')).toThrow(/bridge account "bad name"/);
  });
});
