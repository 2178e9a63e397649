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

  // What the bridge did before it read the bytes itself: a regex on the head as Latin-1.
  const byRegex = (payload: Uint8Array): string | undefined =>
    /"message_id"\s*:\s*"([A-Za-z0-9_.:-]{1,128})"/.exec(
      Buffer.from(payload.buffer, payload.byteOffset, Math.min(payload.byteLength, 512)).toString('latin1'),
    )?.[1];

  it('finds the same message_id as a regex on the first 512 bytes would, whatever surrounds it', () => {
    // Payloads made of the pieces that decide a match, so that near misses are common.
    const piece = fc.constantFrom(
      '"message_id"',
      '"message_id"',
      ':',
      ' ',
      '\t',
      '\n',
      '\u00a0',
      '"',
      'abc',
      'A-9_.:',
      '{',
      ',',
      '"x"',
      'é',
      '\u2028',
    );
    const id = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,130}$/);
    const payload = fc
      .tuple(
        fc.array(piece, { maxLength: 12 }),
        fc.option(id),
        fc.array(piece, { maxLength: 6 }),
        fc.nat(520),
      )
      .map(([before, maybeId, after, pad]) =>
        Buffer.from(
          ' '.repeat(pad % 3 === 0 ? pad : 0) +
            before.join('') +
            (maybeId ? `"${maybeId}"` : '') +
            after.join(''),
          'latin1',
        ),
      );
    fc.assert(
      fc.property(payload, (b) => {
        const want = byRegex(b);
        const got = messageIdOf('d', b);
        return want === undefined ? got.startsWith('d:h:') : got === `d:${want}`;
      }),
      { numRuns: 5_000 },
    );
  });

  it('takes an id of up to 128 characters, and hashes a payload whose id is longer', () => {
    const withId = (id: string) => enc(`{"message_id": "${id}"}`);
    expect(messageIdOf('d', withId('x'.repeat(128)))).toBe(`d:${'x'.repeat(128)}`);
    expect(messageIdOf('d', withId('x'.repeat(129)))).toMatch(/^d:h:/);
  });

  it('reads an id that ends exactly at byte 512, and none that crosses it', () => {
    const at = (n: number, id: string) => enc(' '.repeat(n) + `{"message_id":"${id}"}`);
    const head = '{"message_id":"'.length;
    expect(messageIdOf('d', at(512 - head - 6 - 1, 'abcdef'))).toBe('d:abcdef');
    expect(messageIdOf('d', at(512 - head - 6, 'abcdef'))).toMatch(/^d:h:/);
  });
});
