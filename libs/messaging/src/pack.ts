import { createHash } from 'node:crypto';
import { Packr, Unpackr } from 'msgpackr';
import { DlqReasons, Headers, Subjects } from '@iot/contracts';
import { injectTraceContext } from '@iot/observability';
import { EndOfTurnQueue } from './end-of-turn';
import { PermanentError } from './errors';
import type { JetStreamPublisher } from './publisher';

/**
 * Packs (docs/adr/0011): the messages one event-loop turn publishes for one tenant leave as
 * one JetStream message, each with its own headers and payload inside, and the consumer
 * (ConsumerRunner) hands them to its handler one by one as if each had come alone. A stored
 * message, a delivery and an ack cost nats-server about as much whatever the message holds;
 * per message they were the largest cost left on the pipeline's two hops.
 */

/**
 * One message of a pack: the headers and payload it would have had alone. The payload is the
 * message's value, or its bytes (a Uint8Array: a device's payload as it came, JSON or not).
 */
export interface PackItem {
  headers: Record<string, string>;
  payload: unknown;
}

/**
 * How a pack is written, in its `iot-pack-format` header: `msgpack`, MessagePack, each payload
 * a value or bytes (MessagePack's bin: the raw hop's device payloads, kept byte for byte). Read,
 * no longer written: absent, JSON values; `bytes`, a JSON index line and the payloads' bytes
 * (what a stream may still hold from before MessagePack).
 */
export const PackFormats = { bytes: 'bytes', msgpack: 'msgpack' } as const;

/** At most this many messages in one pack (the normalizer and the writer take batches of 250 and more). */
export const PACK_MAX_ITEMS = 250;
/**
 * A pack is at most this many bytes, written (nats-server refuses a message above 1 MiB by
 * default); a message larger than that goes alone.
 */
export const PACK_MAX_BYTES = 256 * 1024;

/**
 * MessagePack with msgpackr's records: a pack names the keys of each shape of object once, then
 * writes its objects' values only, so a pack of decoded telemetry takes 44% of the bytes of its
 * JSON and reads in a third of the time (docs/adr/0011). The shapes are defined inside each
 * pack, nothing is shared between packs or processes: a pack reads alone, in any order. A bin
 * value reads as a view of the pack's bytes, not a copy.
 */
const packr = new Packr({ useRecords: true });
const unpackr = new Unpackr({ useRecords: true });

/** A MessagePack pack: `{items: [{headers, payload}, ...]}`, each payload a value or bytes. */
export function encodeMsgpackPack(items: ReadonlyArray<PackItem>): Uint8Array {
  return packr.pack({ items });
}

const textDecoder = new TextDecoder();

/** The items of a pack's JSON (or of a bytes pack's index), checked; `field` is what each needs besides its headers. */
function jsonItems(subject: string, data: Uint8Array, field: 'payload' | 'bytes'): PackItem[] {
  let value: unknown;
  try {
    value = JSON.parse(textDecoder.decode(data));
  } catch (e) {
    throw new PermanentError(
      DlqReasons.invalidPayload,
      `pack on ${subject} is not JSON: ${(e as Error).message}`,
    );
  }
  return checkedItems(subject, value, field);
}

/** A pack's items as read, each checked to have headers of strings and its `field`. */
function checkedItems(subject: string, value: unknown, field: 'payload' | 'bytes'): PackItem[] {
  const items = (value as { items?: unknown } | null)?.items;
  if (!Array.isArray(items) || items.length === 0)
    throw new PermanentError(
      DlqReasons.invalidPayload,
      `pack on ${subject} has no "items": a pack is {"items":[{"headers":{...},"${field}":...}]}`,
    );
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as Record<string, unknown> | null;
    const headers = item?.headers as Record<string, unknown> | null | undefined;
    let fine = typeof headers === 'object' && headers !== null && field in item!;
    if (fine) for (const key in headers) if (typeof headers![key] !== 'string') fine = false;
    if (fine && field === 'bytes') fine = Number.isSafeInteger(item!.bytes) && (item!.bytes as number) >= 0;
    if (!fine)
      throw new PermanentError(
        DlqReasons.invalidPayload,
        `pack on ${subject}: item ${i} needs "headers" (an object of strings) and ` +
          (field === 'bytes' ? '"bytes" (its payload\'s length)' : '"payload"'),
      );
  }
  return items as PackItem[];
}

/**
 * The messages of a pack written in `format` (its `iot-pack-format` header; absent: JSON), or
 * a PermanentError naming the subject and what is wrong: a pack that cannot be read goes to
 * the DLQ whole, as any message that does not decode.
 */
export function decodePack(subject: string, data: Uint8Array, format?: string): PackItem[] {
  if (format === undefined) return jsonItems(subject, data, 'payload');
  if (format === PackFormats.msgpack) return decodeMsgpackPack(subject, data);
  if (format === PackFormats.bytes) return decodeBytesPack(subject, data);
  throw new PermanentError(
    DlqReasons.invalidPayload,
    `pack on ${subject} is in format "${format}", which this version does not read: ` +
      'upgrade the services that read a stream before those that write it',
  );
}

/** The messages of a MessagePack pack; errors as decodePack. */
export function decodeMsgpackPack(subject: string, data: Uint8Array): PackItem[] {
  let value: unknown;
  try {
    value = unpackr.unpack(data);
  } catch (e) {
    throw new PermanentError(
      DlqReasons.invalidPayload,
      `pack on ${subject} is not MessagePack: ${(e as Error).message}`,
    );
  }
  return checkedItems(subject, value, 'payload');
}

/**
 * The messages of a bytes pack (one line of JSON, `{"items":[{"headers":{...},"bytes":<length>},...]}`,
 * a newline, then the payloads one after the other), each payload a view of the pack's bytes;
 * errors as decodePack.
 */
export function decodeBytesPack(subject: string, data: Uint8Array): PackItem[] {
  const newline = data.indexOf(0x0a);
  if (newline < 0)
    throw new PermanentError(
      DlqReasons.invalidPayload,
      `pack on ${subject} has no index: a bytes pack is one line of JSON, a newline, then the payloads`,
    );
  const items = jsonItems(subject, data.subarray(0, newline), 'bytes');
  let at = newline + 1;
  for (const item of items) {
    const bytes = (item as unknown as { bytes: number }).bytes;
    item.payload = data.subarray(at, at + bytes);
    at += bytes;
  }
  if (at !== data.byteLength)
    throw new PermanentError(
      DlqReasons.invalidPayload,
      `pack on ${subject}: its index counts ${at - newline - 1} bytes of payloads, it holds ${data.byteLength - newline - 1}`,
    );
  return items;
}

interface Waiting {
  tenant: string;
  subject: string;
  headers: Record<string, string>;
  /** The message's value (`add`), written when it leaves, or its bytes (`addBytes`). */
  payload: unknown;
  /** The size of its bytes; 0 for a value (its size shows once written). */
  bytes: number;
  resolve(): void;
  reject(e: unknown): void;
}

interface AddOptions {
  msgId: string;
  headers: Record<string, string>;
  traceparent?: string;
}

/**
 * Publishes messages in packs: what is added in one event-loop turn leaves at its end (or
 * `lingerMs` after the first, where messages come one per turn), one pack per tenant (split
 * at PACK_MAX_ITEMS or PACK_MAX_BYTES), and each `add` resolves when its pack is held by the
 * stream. A message alone in its turn leaves as it would without packs: on its own subject,
 * with its own message id and its value in JSON, so at low rates nothing changes.
 *
 * A pack's message id is a hash of its subject and its messages' ids: a retried publish of
 * the same pack is dropped by the stream's duplicate window. A batch redelivered and packed
 * differently is not; its messages then reach the consumer twice, as a redelivery does (the
 * writer stores a point once, by its key).
 */
export class Packer {
  private readonly queue: EndOfTurnQueue<Waiting>;

  /**
   * `packSubject`: where a tenant's packs go, under the filter of the stream and consumer the
   * messages would reach alone (`Subjects.normalizedPack`, `decodedPack`, `rawPack`).
   * `wait`: how long messages wait for others (EndOfTurnQueue's `lingerMs` and `soonerAt`);
   * by default until the end of the event-loop turn.
   */
  constructor(
    readonly publisher: JetStreamPublisher,
    private readonly packSubject: (tenant: string) => string = Subjects.normalizedPack,
    wait: { lingerMs?: number; soonerAt?: number } = {},
  ) {
    this.queue = new EndOfTurnQueue<Waiting>((due) => this.flush(due), wait.lingerMs, wait.soonerAt);
  }

  /**
   * Adds one message: `subject` is where it would go alone, `msgId` its `Nats-Msg-Id`; the
   * trace context is the caller's, as `publish` would set it. The value is written when the
   * message leaves (at the end of the turn, with its pack): it must not change meanwhile.
   */
  add(tenant: string, subject: string, value: unknown, opts: AddOptions): Promise<void> {
    return this.enqueue(tenant, subject, value, 0, opts);
  }

  /** Adds one message whose payload is bytes, kept as they are (a device's payload, JSON or not). */
  addBytes(tenant: string, subject: string, payload: Uint8Array, opts: AddOptions): Promise<void> {
    return this.enqueue(tenant, subject, payload, payload.byteLength, opts);
  }

  private enqueue(
    tenant: string,
    subject: string,
    payload: unknown,
    bytes: number,
    opts: AddOptions,
  ): Promise<void> {
    const headers: Record<string, string> = { ...opts.headers };
    injectTraceContext(
      { get: (key) => headers[key] ?? '', set: (key, v) => (headers[key] = v) },
      opts.traceparent,
    );
    headers[Headers.msgId] = opts.msgId;
    return new Promise((resolve, reject) =>
      this.queue.push({ tenant, subject, headers, payload, bytes, resolve, reject }),
    );
  }

  private flush(due: Waiting[]): void {
    const byTenant = new Map<string, Waiting[]>();
    for (const w of due) {
      const list = byTenant.get(w.tenant);
      if (list) list.push(w);
      else byTenant.set(w.tenant, [w]);
    }
    for (const [tenant, list] of byTenant) {
      let start = 0;
      let bytes = 0;
      for (let i = 0; i < list.length; i++) {
        bytes += list[i]!.bytes;
        const next = list[i + 1];
        // Closed before the message that would take it past PACK_MAX_BYTES, so a large message
        // (the bridge's MAX_PAYLOAD_BYTES may be raised) cannot take a pack past the server's
        // max_payload; a message larger than that goes alone, as it would without packs. Values
        // have a size only once written: `send` halves a pack that is too large.
        if (next === undefined || i + 1 - start >= PACK_MAX_ITEMS || bytes + next.bytes > PACK_MAX_BYTES) {
          void this.send(tenant, list.slice(start, i + 1));
          start = i + 1;
          bytes = 0;
        }
      }
    }
  }

  private async send(tenant: string, items: Waiting[]): Promise<void> {
    try {
      if (items.length === 1) {
        const { subject, payload, headers } = items[0]!;
        const { [Headers.msgId]: msgId, [Headers.traceparent]: traceparent, ...rest } = headers;
        const data = payload instanceof Uint8Array ? payload : JSON.stringify(payload);
        await this.publisher.publish(subject, data, { msgId: msgId!, traceparent, headers: rest });
      } else {
        let data: Uint8Array;
        try {
          data = encodeMsgpackPack(items.map((w) => ({ headers: w.headers, payload: w.payload })));
        } catch {
          // A value MessagePack cannot hold fails alone (its JSON fails too), not its pack.
          for (const w of items) void this.send(tenant, [w]);
          return;
        }
        if (data.byteLength > PACK_MAX_BYTES) {
          const half = items.length >> 1;
          void this.send(tenant, items.slice(0, half));
          void this.send(tenant, items.slice(half));
          return;
        }
        // The stream's duplicate window spans every tenant: the subject is hashed too.
        const subject = this.packSubject(tenant);
        const hash = createHash('sha256').update(`${subject}\n`);
        for (const w of items) hash.update(`${w.headers[Headers.msgId]}\n`);
        await this.publisher.publish(subject, data, {
          msgId: `pack:${hash.digest('base64url')}`,
          traceparent: items[0]!.headers[Headers.traceparent],
          headers: {
            [Headers.tenant]: tenant,
            [Headers.packSize]: String(items.length),
            [Headers.packFormat]: PackFormats.msgpack,
          },
        });
      }
    } catch (e) {
      for (const w of items) w.reject(e);
      return;
    }
    for (const w of items) w.resolve();
  }
}
