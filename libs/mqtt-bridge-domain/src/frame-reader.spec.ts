import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { generate, type Packet } from 'mqtt-packet';
import { FrameReader, type PublishFrame } from './frame-reader';

type Read = { publish: PublishFrame } | { other: string } | { malformed: string };

const readAll = (chunks: Buffer[]): Read[] => {
  const read: Read[] = [];
  const reader = new FrameReader({
    publish: (frame) =>
      read.push({ publish: { ...frame, payload: digest(frame.payload) as unknown as Buffer } }),
    other: (packet) => read.push({ other: packet.toString('hex') }),
    malformed: (message) => read.push({ malformed: message }),
  });
  for (const chunk of chunks) reader.push(chunk);
  return read;
};

/** A payload told by its length and hash, so a failure prints short. */
const digest = (b: Uint8Array) => `${b.length}:${createHash('sha1').update(b).digest('hex')}`;

const v5 = (packet: Packet) => generate(packet, { protocolVersion: 5 });

/** Splits `bytes` at the given offsets (taken modulo its length). */
const split = (bytes: Buffer, cuts: number[]): Buffer[] => {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const to of [...at, bytes.length]) {
    chunks.push(bytes.subarray(from, to));
    from = to;
  }
  return chunks;
};

describe('FrameReader', () => {
  const publish = fc.record({
    topic: fc.string({ minLength: 1, maxLength: 80 }).filter((t) => !/[+#\u0000]/.test(t)),
    // Up to 20,000 bytes: remaining lengths of one, two and three bytes.
    payload: fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 16_000, max: 20_000 })),
    qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
    dup: fc.boolean(),
    retain: fc.boolean(),
    messageId: fc.integer({ min: 1, max: 65_535 }),
    userProperties: fc.option(
      fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 8 })),
    ),
    contentType: fc.option(fc.string({ maxLength: 20 })),
  });
  const other = fc.constantFrom<Packet>(
    { cmd: 'pingresp' },
    { cmd: 'puback', messageId: 7, reasonCode: 0 },
    { cmd: 'suback', messageId: 3, granted: [1, 0x87] },
    { cmd: 'connack', sessionPresent: true, reasonCode: 0, properties: { receiveMaximum: 20 } },
    { cmd: 'disconnect', reasonCode: 0x8b },
  );
  const packet = fc.oneof(
    publish.map((p) => ({ kind: 'publish' as const, p })),
    other.map((o) => ({ kind: 'other' as const, o })),
  );

  it('reads every PUBLISH and hands every other packet on whole, however the bytes are cut', () => {
    fc.assert(
      fc.property(
        fc.array(packet, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (packets, cuts) => {
          const expected: Read[] = [];
          const bytes: Buffer[] = [];
          for (const x of packets) {
            if (x.kind === 'other') {
              const b = v5(x.o);
              bytes.push(b);
              expected.push({ other: b.toString('hex') });
              continue;
            }
            const { topic, qos, dup, retain, messageId, userProperties, contentType } = x.p;
            const payload =
              typeof x.p.payload === 'number'
                ? new Uint8Array(x.p.payload).fill(x.p.payload & 0xff)
                : x.p.payload;
            const properties = {
              ...(userProperties ? { userProperties } : {}),
              ...(contentType !== null ? { contentType } : {}),
            };
            const packetBytes = v5({
              cmd: 'publish',
              topic,
              payload: Buffer.from(payload),
              qos,
              dup,
              retain,
              messageId,
              properties,
            });
            // mqtt-packet writes nothing for properties it refuses: not a packet a broker sends.
            fc.pre(packetBytes.length > 0);
            bytes.push(packetBytes);
            expected.push({
              publish: {
                cmd: 'publish',
                topic,
                payload: digest(payload) as unknown as Buffer,
                qos,
                dup,
                retain,
                messageId: qos > 0 ? messageId : undefined,
              },
            });
          }
          expect(readAll(split(Buffer.concat(bytes), cuts))).toEqual(expected);
        },
      ),
      { numRuns: 200, endOnFailure: true },
    );
  });

  it('gives the payload as a view of the bytes read, not a copy', () => {
    const bytes = v5({
      cmd: 'publish',
      topic: 'devices/d1/telemetry',
      payload: Buffer.from('{"t":1}'),
      qos: 1,
      messageId: 9,
      dup: false,
      retain: false,
    });
    let frame: PublishFrame | undefined;
    new FrameReader({ publish: (f) => (frame = f), other: () => undefined, malformed: () => undefined }).push(
      bytes,
    );
    expect(frame?.payload.toString()).toBe('{"t":1}');
    expect(frame?.payload.buffer).toBe(bytes.buffer);
  });

  it('says what is wrong with a stream that is not MQTT, and reads nothing after it', () => {
    const fine = v5({ cmd: 'pingresp' });
    const qos3 = Buffer.from([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]);
    expect(readAll([Buffer.concat([qos3, fine])])).toEqual([{ malformed: 'a PUBLISH with QoS 3' }]);
    const longLength = Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    expect(readAll([longLength])).toEqual([{ malformed: 'a remaining length longer than four bytes' }]);
    const alias = Buffer.from([0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01]);
    expect(readAll([alias])).toEqual([
      { malformed: 'a PUBLISH with no topic (a topic alias, which the bridge does not accept)' },
    ]);
    const shortTopic = Buffer.from([0x30, 0x03, 0x00, 0x05, 0x61]);
    expect(readAll([shortTopic])).toEqual([{ malformed: 'a PUBLISH shorter than its topic' }]);
  });
});
