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

/** One message of a pack: the headers and payload it would have had alone. */
export interface PackItem {
  headers: Record<string, string>;
  payload: unknown;
}

/** At most this many messages in one pack (demux and the normalizer take batches of 250). */
export const PACK_MAX_ITEMS = 250;
/** A pack is closed once it holds this many bytes (nats-server refuses above 1 MiB by default). */
export const PACK_MAX_BYTES = 256 * 1024;

/** The pack's JSON: `{"items":[{"headers":{...},"payload":<the message's JSON>},...]}`. */
export function encodePack(items: ReadonlyArray<{ headers: Record<string, string>; json: string }>): string {
  let out = '{"items":[';
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (i > 0) out += ',';
    out += `{"headers":${JSON.stringify(item.headers)},"payload":${item.json}}`;
  }
  return `${out}]}`;
}

const textDecoder = new TextDecoder();

/**
 * The messages of a pack, or a PermanentError naming the subject and what is wrong: a pack
 * that cannot be read goes to the DLQ whole, as any message that does not decode.
 */
export function decodePack(subject: string, data: Uint8Array): PackItem[] {
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
      `pack on ${subject} has no "items": a pack is {"items":[{"headers":{...},"payload":...}]}`,
    );
  items.forEach((item: unknown, i) => {
    const headers = (item as PackItem | null)?.headers;
    const fine =
      typeof headers === 'object' &&
      headers !== null &&
      Object.values(headers).every((v) => typeof v === 'string') &&
      'payload' in (item as object);
    if (!fine)
      throw new PermanentError(
        DlqReasons.invalidPayload,
        `pack on ${subject}: item ${i} needs "headers" (an object of strings) and "payload"`,
      );
  });
  return items as PackItem[];
}

interface Waiting {
  tenant: string;
  subject: string;
  headers: Record<string, string>;
  json: string;
  resolve(): void;
  reject(e: unknown): void;
}

/**
 * Publishes messages in packs: what is added in one event-loop turn leaves at its end, one
 * pack per tenant (split at PACK_MAX_ITEMS or PACK_MAX_BYTES), and each `add` resolves when
 * its pack is held by the stream. A message alone in its turn leaves as it would without
 * packs: on its own subject, with its own message id, so at low rates nothing changes.
 *
 * A pack's message id is a hash of its subject and its messages' ids: a retried publish of
 * the same pack is dropped by the stream's duplicate window. A batch redelivered and packed
 * differently is not; its messages then reach the consumer twice, as a redelivery does (the
 * writer stores a point once, by its key).
 */
export class Packer {
  private readonly queue = new EndOfTurnQueue<Waiting>((due) => this.flush(due));

  /**
   * `packSubject`: where a tenant's packs go, under the filter of the stream and consumer the
   * messages would reach alone (`Subjects.normalizedPack`, `Subjects.decodedPack`).
   */
  constructor(
    readonly publisher: JetStreamPublisher,
    private readonly packSubject: (tenant: string) => string = Subjects.normalizedPack,
  ) {}

  /**
   * Adds one message: `subject` is where it would go alone, `msgId` its `Nats-Msg-Id`; the
   * trace context is the caller's, as `publish` would set it.
   */
  add(
    tenant: string,
    subject: string,
    value: unknown,
    opts: { msgId: string; headers: Record<string, string>; traceparent?: string },
  ): Promise<void> {
    const headers: Record<string, string> = { ...opts.headers };
    injectTraceContext(
      { get: (key) => headers[key] ?? '', set: (key, v) => (headers[key] = v) },
      opts.traceparent,
    );
    headers[Headers.msgId] = opts.msgId;
    const json = JSON.stringify(value);
    return new Promise((resolve, reject) =>
      this.queue.push({ tenant, subject, headers, json, resolve, reject }),
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
        bytes += list[i]!.json.length;
        if (i + 1 - start >= PACK_MAX_ITEMS || bytes >= PACK_MAX_BYTES || i === list.length - 1) {
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
        const { subject, json, headers } = items[0]!;
        const { [Headers.msgId]: msgId, [Headers.traceparent]: traceparent, ...rest } = headers;
        await this.publisher.publish(subject, json, { msgId: msgId!, traceparent, headers: rest });
      } else {
        // The stream's duplicate window spans every tenant: the subject is hashed too.
        const subject = this.packSubject(tenant);
        const hash = createHash('sha256').update(`${subject}\n`);
        for (const w of items) hash.update(`${w.headers[Headers.msgId]}\n`);
        await this.publisher.publish(subject, encodePack(items), {
          msgId: `pack:${hash.digest('base64url')}`,
          traceparent: items[0]!.headers[Headers.traceparent],
          headers: { [Headers.tenant]: tenant, [Headers.packSize]: String(items.length) },
        });
      }
    } catch (e) {
      for (const w of items) w.reject(e);
      return;
    }
    for (const w of items) w.resolve();
  }
}
