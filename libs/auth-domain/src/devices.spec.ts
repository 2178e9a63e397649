import {
  bootstrapTokenTenant,
  DeviceInputError,
  newBootstrapToken,
  parseDeviceInput,
  renewalDue,
} from './devices';

describe('device registry input', () => {
  it('fills defaults on create and keeps what an update leaves out', () => {
    const d = parseDeviceInput({ id: 'farm-7', model: 'zenthos-esp32' });
    expect(d).toEqual({
      id: 'farm-7',
      model: 'zenthos-esp32',
      name: '',
      asset: null,
      metadata: {},
      state: 'active',
    });
    const u = parseDeviceInput({ state: 'disabled', metadata: { row: 3 } }, { ...d, name: 'North' });
    expect(u).toEqual({ ...d, name: 'North', state: 'disabled', metadata: { row: 3 } });
  });

  it.each([
    [{ model: 'm' }, /^id must be/],
    [{ id: 'a/b', model: 'm' }, /^id must be/],
    [{ id: 'x' }, /^model must be/],
    [{ id: 'x', model: 'm', state: 'on' }, /^state must be "active" or "disabled"/],
    [{ id: 'x', model: 'm', metadata: [1] }, /^metadata must be a JSON object/],
    [{ id: 'x', model: 'm', metadata: { s: 'x'.repeat(5000) } }, /^metadata must be at most 4096 bytes/],
    [{ id: 'x', model: 'm', asset: 'a b' }, /^asset must be an asset id/],
  ])('refuses %j with an error that names the field', (body, message) => {
    expect(() => parseDeviceInput(body)).toThrow(DeviceInputError);
    expect(() => parseDeviceInput(body)).toThrow(message);
  });

  it('refuses to change the id of an existing device', () => {
    const d = parseDeviceInput({ id: 'a', model: 'm' });
    expect(() => parseDeviceInput({ id: 'b' }, d)).toThrow(/id cannot change/);
  });
});

describe('bootstrap tokens', () => {
  it('carry their tenant and nothing else parses as one', () => {
    const t = newBootstrapToken('acme');
    expect(bootstrapTokenTenant(t)).toBe('acme');
    expect(bootstrapTokenTenant(t.replace('dev_bt_', 'dev_ak_'))).toBeUndefined();
    expect(bootstrapTokenTenant(`${t}x/`)).toBeUndefined();
    expect(bootstrapTokenTenant(42)).toBeUndefined();
  });
});

describe('certificate renewal', () => {
  it('is due once two thirds of the lifetime are gone', () => {
    const from = new Date('2026-01-01T00:00:00Z');
    const to = new Date('2026-04-01T00:00:00Z'); // 90 days
    expect(renewalDue(from, to, new Date('2026-02-28T00:00:00Z'))).toBe(false);
    expect(renewalDue(from, to, new Date('2026-03-02T00:00:00Z'))).toBe(true);
  });
});
