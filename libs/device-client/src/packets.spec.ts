import { encodePacket, followingId } from './packets';

describe('packets', () => {
  it('numbers packet identifiers 1-65535, then from 1 again', () => {
    expect(followingId(1)).toBe(2);
    expect(followingId(65_534)).toBe(65_535);
    expect(followingId(65_535)).toBe(1);
  });

  it("gives mqtt-packet's bytes, or its refusal as a sentence instead of a throw", () => {
    expect(encodePacket({ cmd: 'pingreq' }, 5)).toEqual(Buffer.from([0xc0, 0x00]));
    expect(encodePacket({ cmd: 'puback', messageId: 258 }, 4)).toEqual(Buffer.from([0x40, 0x02, 0x01, 0x02]));
    expect(
      encodePacket({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: '', clean: false }, 4),
    ).toBe('clientId must be given if cleanSession set to 0');
    expect(
      encodePacket(
        { cmd: 'publish', topic: 42 as unknown as string, payload: 'x', qos: 0, dup: false, retain: false },
        5,
      ),
    ).toMatch(/topic/i);
  });
});
