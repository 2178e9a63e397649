import { headers as natsHeaders } from '@nats-io/transport-node';
import { headerRecord, OutgoingHeaders } from './headers';

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
