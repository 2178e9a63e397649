import { PermanentError } from './errors';
import { decodePack, encodePack } from './pack';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('packs (docs/adr/0011)', () => {
  it('reads back what it wrote: each message with its own headers and payload', () => {
    const items = [
      { headers: { 'Nats-Msg-Id': 'a', 'iot-device': 'd1' }, payload: { v: 1, s: 'x"y' } },
      { headers: { 'Nats-Msg-Id': 'b', 'iot-device': 'd2' }, payload: [1, 2] },
    ];
    const text = encodePack(items.map((i) => ({ headers: i.headers, json: JSON.stringify(i.payload) })));
    expect(decodePack('iot.normalized.v1.t.~pack', bytes(text))).toEqual(items);
  });

  it.each([
    ['not JSON', '{"items": [', /pack on iot.normalized.v1.t.~pack is not JSON/],
    ['no items', '{"things": []}', /has no "items"/],
    ['an empty pack', '{"items": []}', /has no "items"/],
    [
      'an item without payload',
      '{"items": [{"headers": {}}]}',
      /item 0 needs "headers" \(an object of strings\) and "payload"/,
    ],
    ['a header that is not text', '{"items": [{"headers": {"a": 1}, "payload": 1}]}', /item 0 needs/],
    ['an item that is not an object', '{"items": [{"headers": {}, "payload": 1}, 7]}', /item 1 needs/],
  ])('refuses %s with an error that names the subject, for the DLQ', (_, text, message) => {
    let error: unknown;
    try {
      decodePack('iot.normalized.v1.t.~pack', bytes(text));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as PermanentError).reason).toBe('invalid-payload');
    expect((error as Error).message).toMatch(message);
  });
});
