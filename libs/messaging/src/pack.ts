import { createHash } from 'node:crypto';
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
 * One message of a pack: the headers and payload it would have had alone. In a JSON pack the
 * payload is the message's JSON value; in a bytes pack (`PackFormats.bytes`) its bytes.
 */
export interface PackItem {
  headers: Record<string, string>;
  payload: unknown;
}

/**
 * How a pack's messages are written, in its `iot-pack-format` header: absent, JSON values (the
 * decoded and normalized hops); `bytes`, bytes as they came (the raw hop: a device's payload
 * may be anything, and is kept byte for byte).
 */
export const PackFormats = { bytes: 'bytes' } as const;

/** At most this many messages in one pack (demux and the normalizer take batches of 250). */
export const PACK_MAX_ITEMS = 250;
/** A pack holds at most this many bytes of payloads (nats-server refuses a message above 1 MiB by default). */
export const PACK_MAX_BYTES = 256 * 1024;

/** `{"items":[{"headers":{...},<rest>},...]}`, each item's `rest` as `rest(item)` writes it. */
function itemsJson<I extends { headers: Record<string, string> }>(
  items: ReadonlyArray<I>,
  rest: (item: I) => string,
): string {
  let out = '{"items":[';
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (i > 0) out += ',';
    out += `{"headers":${JSON.stringify(item.headers)},${rest(item)}}`;
  }
  return `${out}]}`;
}

/** The pack's JSON: `{"items":[{"headers":{...},"payload":<the message's JSON>},...]}`. */
export function encodePack(items: ReadonlyArray<{ headers: Record<string, string>; body: string }>): string {
  return itemsJson(items, (item) => `"payload":${item.body}`);
}

/**
 * A bytes pack: one line of JSON, `{"items":[{"headers":{...},"bytes":<length>},...]}`, a
 * newline, then each message's payload as it came, one after the other. JSON.stringify writes
 * no newline of its own, so the first one ends the index.
 */
export function encodeBytesPack(
  items: ReadonlyArray<{ headers: Record<string, string>; body: Uint8Array }>,
): Buffer {
  const index = `${itemsJson(items, (item) => `"bytes":${item.body.byteLength}`)}\n`;
  const indexBytes = Buffer.byteLength(index);
  let total = indexBytes;
  for (const item of items) total += item.body.byteLength;
  const out = Buffer.allocUnsafe(total);
  out.write(index, 0);
  let at = indexBytes;
  for (const item of items) {
    out.set(item.body, at);
    at += item.body.byteLength;
  }
  return out;
}

const textDecoder = new TextDecoder();

/** The items of a pack's JSON (or of a bytes pack's index), checked; `field` is what each needs besides its headers. */
function itemsOf(subject: string, data: Uint8Array, field: 'payload' | 'bytes'): PackItem[] {
  let value: unknown;
  try {
    value = JSON.parse(textDecoder.decode(data));
  } catch (e) {
    throw new PermanentError(
      DlqReasons.invalidPayload,
      `pack on ${subject} is not JSON: ${(e as Error).message}`,
    );
  }
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
 * The messages of a pack, or a PermanentError naming the subject and what is wrong: a pack
 * that cannot be read goes to the DLQ whole, as any message that does not decode.
 */
export function decodePack(subject: string, data: Uint8Array): PackItem[] {
  return itemsOf(subject, data, 'payload');
}

/** The messages of a bytes pack, each payload a view of the pack's bytes; errors as decodePack. */
export function decodeBytesPack(subject: string, data: Uint8Array): PackItem[] {
  const newline = data.indexOf(0x0a);
  if (newline < 0)
    throw new PermanentError(
      DlqReasons.invalidPayload,
      `pack on ${subject} has no index: a bytes pack is one line of JSON, a newline, then the payloads`,
    );
  const items = itemsOf(subject, data.subarray(0, newline), 'bytes');
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
  /** The message's JSON (`add`), or its bytes (`addBytes`). */
  body: string | Uint8Array;
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
 * with its own message id, so at low rates nothing changes.
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
   * trace context is the caller's, as `publish` would set it.
   */
  add(tenant: string, subject: string, value: unknown, opts: AddOptions): Promise<void> {
    return this.enqueue(tenant, subject, JSON.stringify(value), opts);
  }

  /** Adds one message whose payload is bytes, kept as they are (a bytes pack). */
  addBytes(tenant: string, subject: string, payload: Uint8Array, opts: AddOptions): Promise<void> {
    return this.enqueue(tenant, subject, payload, opts);
  }

  private enqueue(
    tenant: string,
    subject: string,
    body: string | Uint8Array,
    opts: AddOptions,
  ): Promise<void> {
    const headers: Record<string, string> = { ...opts.headers };
    injectTraceContext(
      { get: (key) => headers[key] ?? '', set: (key, v) => (headers[key] = v) },
      opts.traceparent,
    );
    headers[Headers.msgId] = opts.msgId;
    return new Promise((resolve, reject) =>
      this.queue.push({ tenant, subject, headers, body, resolve, reject }),
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
        bytes += list[i]!.body.length;
        const next = list[i + 1];
        // Closed before the message that would take it past PACK_MAX_BYTES, so a large message
        // (the bridge's MAX_PAYLOAD_BYTES may be raised) cannot take a pack past the server's
        // max_payload; a message larger than that goes alone, as it would without packs.
        if (
          next === undefined ||
          i + 1 - start >= PACK_MAX_ITEMS ||
          bytes + next.body.length > PACK_MAX_BYTES ||
          typeof next.body !== typeof list[i]!.body // JSON and bytes do not share a pack
        ) {
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
        const { subject, body, headers } = items[0]!;
        const { [Headers.msgId]: msgId, [Headers.traceparent]: traceparent, ...rest } = headers;
        await this.publisher.publish(subject, body, { msgId: msgId!, traceparent, headers: rest });
      } else {
        // The stream's duplicate window spans every tenant: the subject is hashed too.
        const subject = this.packSubject(tenant);
        const hash = createHash('sha256').update(`${subject}\n`);
        for (const w of items) hash.update(`${w.headers[Headers.msgId]}\n`);
        const headers: Record<string, string> = {
          [Headers.tenant]: tenant,
          [Headers.packSize]: String(items.length),
        };
        let data: string | Buffer;
        if (typeof items[0]!.body === 'string') data = encodePack(items as Array<Waiting & { body: string }>);
        else {
          data = encodeBytesPack(items as Array<Waiting & { body: Uint8Array }>);
          headers[Headers.packFormat] = PackFormats.bytes;
        }
        await this.publisher.publish(subject, data, {
          msgId: `pack:${hash.digest('base64url')}`,
          traceparent: items[0]!.headers[Headers.traceparent],
          headers,
        });
      }
    } catch (e) {
      for (const w of items) w.reject(e);
      return;
    }
    for (const w of items) w.resolve();
  }
}
