import { PermanentError } from './errors';
import { decodeBytesPack, decodePack, encodeBytesPack, encodePack, PACK_MAX_BYTES, Packer } from './pack';
import type { JetStreamPublisher } from './publisher';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('packs (docs/adr/0011)', () => {
  it('reads back what it wrote: each message with its own headers and payload', () => {
    const items = [
      { headers: { 'Nats-Msg-Id': 'a', 'iot-device': 'd1' }, payload: { v: 1, s: 'x"y' } },
      { headers: { 'Nats-Msg-Id': 'b', 'iot-device': 'd2' }, payload: [1, 2] },
    ];
    const text = encodePack(items.map((i) => ({ headers: i.headers, body: JSON.stringify(i.payload) })));
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

  it('reads back a bytes pack: each payload byte for byte, newlines and invalid UTF-8 too', () => {
    const items: Array<{ headers: Record<string, string>; body: Uint8Array }> = [
      { headers: { 'Nats-Msg-Id': 'a', 'iot-device': 'd1', note: 'two\nlines' }, body: bytes('{"v":1}\n') },
      { headers: { 'Nats-Msg-Id': 'b', 'iot-device': 'd2' }, body: new Uint8Array([0xff, 0x0a, 0x00, 0xc3]) },
      { headers: { 'Nats-Msg-Id': 'c', 'iot-device': 'd3' }, body: new Uint8Array() },
    ];
    const decoded = decodeBytesPack('iot.raw.v1.t.~pack', encodeBytesPack(items));
    expect(decoded.map((i) => i.headers)).toEqual(items.map((i) => i.headers));
    expect(decoded.map((i) => Buffer.from(i.payload as Uint8Array).toString('hex'))).toEqual(
      items.map((i) => Buffer.from(i.body).toString('hex')),
    );
  });

  it.each([
    ['no index', '{"items":[{"headers":{},"bytes":1}]}', /has no index: a bytes pack is one line of JSON/],
    [
      'an item without its length',
      '{"items":[{"headers":{}}]}\nx',
      /item 0 needs "headers" \(an object of strings\) and "bytes"/,
    ],
    ['a length that is not a count', '{"items":[{"headers":{},"bytes":-1}]}\n', /item 0 needs/],
    [
      'fewer bytes than the index counts',
      '{"items":[{"headers":{},"bytes":3}]}\nab',
      /its index counts 3 bytes of payloads, it holds 2/,
    ],
    [
      'more bytes than the index counts',
      '{"items":[{"headers":{},"bytes":1}]}\nab',
      /its index counts 1 bytes of payloads, it holds 2/,
    ],
  ])('refuses a bytes pack with %s, naming the subject', (_, text, message) => {
    expect(() => decodeBytesPack('iot.raw.v1.t.~pack', bytes(text))).toThrow(PermanentError);
    expect(() => decodeBytesPack('iot.raw.v1.t.~pack', bytes(text))).toThrow(
      new RegExp(`pack on iot\\.raw\\.v1\\.t\\.~pack.*${message.source}`),
    );
  });

  it('closes a pack before the message that would take it past PACK_MAX_BYTES; a larger one goes alone', async () => {
    // Where the packs go is all this looks at: a publisher that records and acks at once.
    const sent: Array<{ subject: string; items: number }> = [];
    const publisher = {
      publish: async (
        subject: string,
        _data: string | Uint8Array,
        opts: { headers?: Record<string, string> },
      ) => {
        sent.push({ subject, items: Number(opts.headers?.['iot-pack-size'] ?? 1) });
        return { stream: 'S', seq: sent.length, duplicate: false };
      },
    } as unknown as JetStreamPublisher;
    const packer = new Packer(publisher, (t) => `iot.raw.v1.${t}.~pack`);
    const third = new Uint8Array(Math.floor(PACK_MAX_BYTES / 3) + 1);
    const huge = new Uint8Array(PACK_MAX_BYTES + 1);
    await Promise.all(
      [third, third, third, huge, third].map((body, i) =>
        packer.addBytes('t', `iot.raw.v1.t.d${i}`, body, { msgId: `m${i}`, headers: {} }),
      ),
    );
    expect(sent).toEqual([
      { subject: 'iot.raw.v1.t.~pack', items: 2 }, // a third one more would pass the limit
      { subject: 'iot.raw.v1.t.d2', items: 1 }, // alone before the huge one
      { subject: 'iot.raw.v1.t.d3', items: 1 }, // larger than a pack: alone
      { subject: 'iot.raw.v1.t.d4', items: 1 },
    ]);
  });
});
