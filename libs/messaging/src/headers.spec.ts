import { headers as natsHeaders } from '@nats-io/transport-node';
import { headerRecord, OutgoingHeaders, parseHeaderBlock, receivedHeaders } from './headers';

describe('OutgoingHeaders', () => {
  it('writes the same bytes as nats.js headers(), a name set again moving to the end', () => {
    const ours = new OutgoingHeaders({ 'iot-tenant': 'demo', 'iot-device': 'demo-0001' });
    ours.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    ours.set('Nats-Msg-Id', ' demo-0001:42 ');
    ours.set('iot-tenant', 'other');
    const theirs = natsHeaders() as ReturnType<typeof natsHeaders> & { encode(): Uint8Array };
    theirs.set('iot-tenant', 'demo');
    theirs.set('iot-device', 'demo-0001');
    theirs.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    theirs.set('Nats-Msg-Id', ' demo-0001:42 ');
    theirs.set('iot-tenant', 'other');
    expect(new TextDecoder().decode(ours.encode())).toBe(new TextDecoder().decode(theirs.encode()));
    expect(ours.get('Nats-Msg-Id')).toBe('demo-0001:42');
    expect(ours.get('nats-msg-id')).toBe('');
  });

  it('refuses a value with a line break, naming the header, as it would split the message', () => {
    expect(() => new OutgoingHeaders({ 'Nats-Msg-Id': 'a\r\nInjected: 1' })).toThrow(
      /NATS header 'Nats-Msg-Id' cannot hold a line break/,
    );
    expect(() => new OutgoingHeaders().set('bad name', 'x')).toThrow(/invalid NATS header name 'bad name'/);
  });

  it('reads back through nats.js as the headers that were set', () => {
    const wire = new OutgoingHeaders({ 'iot-tenant': 'demo', 'iot-received-at': '1764000000000' }).encode();
    const h = (
      natsHeaders() as unknown as { constructor: { decode(b: Uint8Array): never } }
    ).constructor.decode(wire);
    expect(headerRecord(h)).toEqual({ 'iot-tenant': 'demo', 'iot-received-at': '1764000000000' });
    expect(headerRecord(undefined)).toEqual({});
  });
});

describe('parseHeaderBlock', () => {
  const natsDecode = (block: string) =>
    headerRecord(
      (natsHeaders() as unknown as { constructor: { decode(b: Uint8Array): never } }).constructor.decode(
        new TextEncoder().encode(block),
      ),
    );

  it.each([
    [
      'the headers a stage sets',
      new TextDecoder().decode(
        new OutgoingHeaders({
          'Nats-Msg-Id': 'demo-0001:42',
          traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
          'iot-tenant': 'demo',
          'iot-device': 'demo-0001',
          'iot-received-at': '1764000000000',
          'iot-source-topic': 'devices/demo-0001/telemetry',
        }).encode(),
      ),
    ],
    [
      'a status line, a repeated name, spaces and colons in values, an empty line',
      'NATS/1.0 503 No Responders\r\nA: 1\r\nA: 2\r\nB:  x:y:z  \r\nC:\r\n\r\n',
    ],
    ['no headers', 'NATS/1.0\r\n\r\n'],
    ['a line without a colon, and no final blank line', 'NATS/1.0\r\nnot a header\r\nD: 4'],
  ])('reads %s as nats.js does', (_what, block) => {
    expect(parseHeaderBlock(block)).toEqual(natsDecode(block));
  });

  it('falls back to nats.js headers for a message without the wire bytes it expects', () => {
    const h = natsHeaders();
    h.set('iot-tenant', 'demo');
    expect(receivedHeaders({ headers: h })).toEqual({ 'iot-tenant': 'demo' });
    expect(receivedHeaders({})).toEqual({});
  });
});
