import { TE } from '@nats-io/nats-core/internal';
import { encodeProtocolInPool } from './protocol-encoding';

describe('encodeProtocolInPool', () => {
  const reference = new TextEncoder();

  it("gives nats.js's protocol lines the bytes TextEncoder gives them, from Node's pool", () => {
    encodeProtocolInPool();
    encodeProtocolInPool(); // a second call changes nothing
    const lines = [
      'HPUB iot.normalized.v1.demo.dev-1 _INBOX.X7.12 231 640\r\n',
      'PUB $JS.ACK.IOT_RAW.demux.1.42.42.1733300000000000000.0 0\r\n',
      '', // nats.js's empty payload
      'sub.ünïcødé.😀', // a subject nats.js would refuse, still encoded as UTF-8
      'lone \ud800 surrogate', // U+FFFD, as TextEncoder writes it
    ];
    for (const line of lines) {
      const out = TE.encode(line);
      expect(Buffer.from(out).equals(Buffer.from(reference.encode(line)))).toBe(true);
      expect(Buffer.isBuffer(out)).toBe(true);
    }
    expect(TE.encode().length).toBe(0);
  });
});
