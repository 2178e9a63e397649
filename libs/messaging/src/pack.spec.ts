import { PermanentError } from './errors';
import {
  decodeBytesPack,
  decodeMsgpackPack,
  decodePack,
  encodeMsgpackPack,
  PACK_MAX_BYTES,
  Packer,
} from './pack';
import type { JetStreamPublisher } from './publisher';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('packs (docs/adr/0011)', () => {
  const items = [
    { headers: { 'Nats-Msg-Id': 'a', 'iot-device': 'd1' }, payload: { v: 1, s: 'x"y', ts: 1796578970326 } },
    { headers: { 'Nats-Msg-Id': 'b', 'iot-device': 'd2' }, payload: [1, 2, -1.5, 0.1, 2 ** 53 - 1, 'é€'] },
    { headers: { 'Nats-Msg-Id': 'c', 'iot-device': 'd1' }, payload: { v: 2, s: '', ts: 1796578970327 } },
  ];

  it('reads back what it wrote in MessagePack: each message with its own headers and payload, numbers exact', () => {
    const data = encodeMsgpackPack(items);
    expect(decodePack('iot.normalized.v1.t.~pack', data, 'msgpack')).toEqual(items);
    // Fewer bytes than the same pack in JSON: the keys of a shape are written once.
    expect(data.byteLength).toBeLessThan(JSON.stringify({ items }).length);
  });

  it('still reads a pack in JSON, as packs were written before MessagePack (no format header)', () => {
    expect(decodePack('iot.normalized.v1.t.~pack', bytes(JSON.stringify({ items })))).toEqual(items);
  });

  it.each([
    ['JSON', bytes('{"items":[]}'), /pack on iot.normalized.v1.t.~pack is not MessagePack/],
    ['cut short', encodeMsgpackPack(items).subarray(0, 20), /is not MessagePack: Unexpected end/],
    ['no items', encodeMsgpackPack([]), /has no "items"/],
    [
      'an item without payload',
      encodeMsgpackPack([{ headers: {} } as never]),
      /item 0 needs "headers" \(an object of strings\) and "payload"/,
    ],
  ])('refuses a MessagePack pack that is %s, naming the subject', (_, data, message) => {
    expect(() => decodeMsgpackPack('iot.normalized.v1.t.~pack', data)).toThrow(PermanentError);
    expect(() => decodeMsgpackPack('iot.normalized.v1.t.~pack', data)).toThrow(message);
  });

  it('refuses a pack in a format it does not know, saying to upgrade readers first', () => {
    expect(() => decodePack('iot.normalized.v1.t.~pack', bytes('{}'), 'cbor')).toThrow(
      /pack on iot.normalized.v1.t.~pack is in format "cbor", which this version does not read: upgrade the services that read a stream before those that write it/,
    );
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

  const raw: Array<{ headers: Record<string, string>; payload: Uint8Array }> = [
    { headers: { 'Nats-Msg-Id': 'a', 'iot-device': 'd1', note: 'two\nlines' }, payload: bytes('{"v":1}\n') },
    {
      headers: { 'Nats-Msg-Id': 'b', 'iot-device': 'd2' },
      payload: new Uint8Array([0xff, 0x0a, 0x00, 0xc3]),
    },
    { headers: { 'Nats-Msg-Id': 'c', 'iot-device': 'd3' }, payload: new Uint8Array() },
  ];
  const hex = (list: Array<{ payload: unknown }>) =>
    list.map((i) => Buffer.from(i.payload as Uint8Array).toString('hex'));

  it('carries bytes in a MessagePack pack byte for byte, newlines and invalid UTF-8 too', () => {
    const decoded = decodePack('iot.raw.v1.t.~pack', encodeMsgpackPack(raw), 'msgpack');
    expect(decoded.map((i) => i.headers)).toEqual(raw.map((i) => i.headers));
    expect(decoded.every((i) => i.payload instanceof Uint8Array)).toBe(true);
    expect(hex(decoded)).toEqual(hex(raw));
  });

  it('still reads a bytes pack, as the bridge wrote them before MessagePack: a JSON index line, then the payloads', () => {
    const index = JSON.stringify({
      items: raw.map((i) => ({ headers: i.headers, bytes: i.payload.byteLength })),
    });
    const data = Buffer.concat([bytes(`${index}\n`), ...raw.map((i) => i.payload)]);
    const decoded = decodePack('iot.raw.v1.t.~pack', data, 'bytes');
    expect(decoded.map((i) => i.headers)).toEqual(raw.map((i) => i.headers));
    expect(hex(decoded)).toEqual(hex(raw));
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

  /** Where the packs go and what they hold: a publisher that records and acks at once. */
  function recordingPublisher() {
    const sent: Array<{ subject: string; items: number; data: string | Uint8Array; format?: string }> = [];
    const publisher = {
      publish: async (
        subject: string,
        data: string | Uint8Array,
        opts: { headers?: Record<string, string> },
      ) => {
        sent.push({
          subject,
          items: Number(opts.headers?.['iot-pack-size'] ?? 1),
          data,
          format: opts.headers?.['iot-pack-format'],
        });
        return { stream: 'S', seq: sent.length, duplicate: false };
      },
    } as unknown as JetStreamPublisher;
    return { sent, publisher };
  }

  it('sends the values of a turn as one MessagePack pack, and a value alone in its turn alone, in JSON', async () => {
    const { sent, publisher } = recordingPublisher();
    const packer = new Packer(publisher, (t) => `iot.normalized.v1.${t}.~pack`);
    const value = (i: number) => ({
      device: `d${i}`,
      ts: 1796578970326 + i,
      points: [{ metric: 'm', value: i / 10 }],
    });
    await Promise.all(
      [0, 1, 2].map((i) =>
        packer.add('t', `iot.normalized.v1.t.d${i}`, value(i), {
          msgId: `m${i}`,
          headers: { 'iot-device': `d${i}` },
        }),
      ),
    );
    await packer.add('t', 'iot.normalized.v1.t.d9', value(9), { msgId: 'm9', headers: {} });
    expect(sent.map(({ subject, items, format }) => ({ subject, items, format }))).toEqual([
      { subject: 'iot.normalized.v1.t.~pack', items: 3, format: 'msgpack' },
      { subject: 'iot.normalized.v1.t.d9', items: 1, format: undefined },
    ]);
    const pack = decodePack(sent[0]!.subject, sent[0]!.data as Uint8Array, sent[0]!.format);
    expect(pack.map((i) => i.payload)).toEqual([0, 1, 2].map(value));
    expect(pack.map((i) => i.headers['Nats-Msg-Id'])).toEqual(['m0', 'm1', 'm2']);
    expect(JSON.parse(sent[1]!.data as string)).toEqual(value(9));
  });

  it('halves a pack of values whose MessagePack would pass PACK_MAX_BYTES, until each half fits', async () => {
    const { sent, publisher } = recordingPublisher();
    const packer = new Packer(publisher, (t) => `iot.normalized.v1.${t}.~pack`);
    // 100 values of 6 KiB: 600 KiB, then halves of 300 KiB, still more than 256: four packs of 25.
    const big = (i: number) => ({ i, note: `${i}`.padEnd(6 * 1024, '.') });
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        packer.add('t', `iot.normalized.v1.t.d${i}`, big(i), { msgId: `m${i}`, headers: {} }),
      ),
    );
    expect(sent.map((s) => s.items)).toEqual([25, 25, 25, 25]);
    expect(sent.every((s) => (s.data as Uint8Array).byteLength <= PACK_MAX_BYTES)).toBe(true);
    const all = sent.flatMap((s) =>
      decodePack(s.subject, s.data as Uint8Array, s.format).map((i) => i.payload),
    );
    expect(all).toEqual(Array.from({ length: 100 }, (_, i) => big(i)));
  });

  it('fails only the message whose value cannot be written, not the others of its pack', async () => {
    const { sent, publisher } = recordingPublisher();
    const packer = new Packer(publisher, (t) => `iot.normalized.v1.${t}.~pack`);
    const outcomes = await Promise.allSettled(
      [{ v: 1 }, { v: 2n ** 70n }, { v: 3 }].map((value, i) =>
        packer.add('t', `iot.normalized.v1.t.d${i}`, value, { msgId: `m${i}`, headers: {} }),
      ),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(sent.map((s) => [s.subject, s.data])).toEqual([
      ['iot.normalized.v1.t.d0', '{"v":1}'],
      ['iot.normalized.v1.t.d2', '{"v":3}'],
    ]);
  });

  it('closes a pack before the message that would take it past PACK_MAX_BYTES; a larger one goes alone', async () => {
    const { sent, publisher } = recordingPublisher();
    const packer = new Packer(publisher, (t) => `iot.raw.v1.${t}.~pack`);
    const third = new Uint8Array(Math.floor(PACK_MAX_BYTES / 3) + 1);
    const huge = new Uint8Array(PACK_MAX_BYTES + 1);
    await Promise.all(
      [third, third, third, huge, third].map((body, i) =>
        packer.addBytes('t', `iot.raw.v1.t.d${i}`, body, { msgId: `m${i}`, headers: {} }),
      ),
    );
    expect(sent.map(({ subject, items }) => ({ subject, items }))).toEqual([
      { subject: 'iot.raw.v1.t.~pack', items: 2 }, // a third one more would pass the limit
      { subject: 'iot.raw.v1.t.d2', items: 1 }, // alone before the huge one
      { subject: 'iot.raw.v1.t.d3', items: 1 }, // larger than a pack: alone
      { subject: 'iot.raw.v1.t.d4', items: 1 },
    ]);
  });
});
