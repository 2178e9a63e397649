import type { MsgHdrs } from '@nats-io/transport-node';

// RFC 7230 token characters: what nats.js accepts in a header name.
const VALID_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const LINE_BREAK = /[\r\n]/;

/**
 * The headers of a message being published, kept as name/value pairs and written straight
 * to their wire form (`NATS/1.0\r\nName: value\r\n...\r\n\r\n`), the same bytes nats.js
 * `headers()` produces. nats.js's own class looks every name up through freshly built
 * arrays on each `set` and `get` (about 15 arrays per message with our six headers), which
 * made header handling ~7% of demux's CPU and a good part of its garbage collection.
 *
 * Names are matched exactly, as `MsgHdrs.get/set` do by default. A value with a line break
 * is refused, as nats.js refuses it, and values are trimmed, as nats.js trims them.
 */
export class OutgoingHeaders {
  private readonly names: string[] = [];
  private readonly values: string[] = [];
  private encoded: Uint8Array | undefined;

  constructor(init?: Record<string, string>) {
    if (init) for (const name in init) this.set(name, init[name]!);
  }

  get(name: string): string {
    const i = this.names.indexOf(name);
    return i < 0 ? '' : this.values[i]!;
  }

  set(name: string, value: string): void {
    if (!VALID_NAME.test(name)) throw new Error(`invalid NATS header name '${name}'`);
    if (LINE_BREAK.test(value))
      throw new Error(`NATS header '${name}' cannot hold a line break: '${value.slice(0, 80)}'`);
    const v = value.trim();
    // As nats.js's set (a delete, then an append): a name set again moves to the end.
    const i = this.names.indexOf(name);
    if (i >= 0) {
      this.names.splice(i, 1);
      this.values.splice(i, 1);
    }
    this.names.push(name);
    this.values.push(v);
    this.encoded = undefined;
  }

  /** The wire form; nats.js calls only this when it publishes. */
  encode(): Uint8Array {
    if (!this.encoded) {
      let s = 'NATS/1.0';
      for (let i = 0; i < this.names.length; i++) s += `\r\n${this.names[i]}: ${this.values[i]}`;
      // From Node's shared pool, not an ArrayBuffer of its own (see JetStreamPublisher.publish).
      this.encoded = Buffer.from(`${s}\r\n\r\n`);
    }
    return this.encoded;
  }

  /** For nats.js's `publish` options, whose type asks for the full `MsgHdrs`. */
  asMsgHdrs(): MsgHdrs {
    return this as unknown as MsgHdrs;
  }
}

/**
 * A received message's headers as a plain record (the first value of each name), read in one
 * pass instead of one `MsgHdrs.get` (each building and filtering an array of all names) per
 * header a handler asks for.
 */
export function headerRecord(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (h) for (const [name, values] of h) if (values.length > 0) out[name] = values[0]!;
  return out;
}

/** nats.js's received message: its bytes (headers, then payload) and where the headers end. */
interface RawMsg {
  _rdata?: unknown;
  _msg?: { hdr?: unknown };
}

const decoder = new TextDecoder();

/**
 * A received message's headers as a plain record, read from the wire bytes. nats.js's own
 * `headers` builds a `MsgHdrs`, appending line by line (a canonical key, an array of all
 * names filtered, a regex and an array per value): with six headers, a fifth of the
 * allocations of a worker's message. The bytes are nats.js's internals (`_rdata`, `_msg.hdr`
 * of nats-core 3); where they are not there, nats.js's `headers` is read instead. An
 * integration test (consumer.int-spec.ts) checks both give the same record.
 */
export function receivedHeaders(m: { headers?: MsgHdrs }): Record<string, string> {
  // A JsMsg holds the core message as `msg` (not in its public type).
  const raw = (m as { msg?: RawMsg }).msg;
  const hdr = raw?._msg?.hdr;
  if (raw?._rdata instanceof Uint8Array && typeof hdr === 'number') {
    return hdr > 0 ? parseHeaderBlock(decoder.decode(raw._rdata.subarray(0, hdr))) : {};
  }
  return headerRecord(m.headers);
}

/**
 * `NATS/1.0[ status]\r\nName: value\r\n...\r\n\r\n` to a record: the first value of each
 * name, trimmed, as `headerRecord` of nats.js's decoding gives it.
 */
export function parseHeaderBlock(block: string): Record<string, string> {
  const out: Record<string, string> = {};
  let at = block.indexOf('\r\n'); // past the status line
  while (at >= 0) {
    const start = at + 2;
    const next = block.indexOf('\r\n', start);
    const end = next < 0 ? block.length : next;
    const colon = block.indexOf(':', start);
    if (colon > start && colon < end) {
      const name = block.slice(start, colon);
      if (!Object.hasOwn(out, name)) out[name] = block.slice(colon + 1, end).trim();
    }
    at = next;
  }
  return out;
}
