import type { JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import { Headers, isValidToken, Streams, subjectMatcher, Subjects, type DeviceRecord } from '@iot/contracts';
import type { JetStreamPublisher } from '@iot/messaging';

const DLQ = Streams.DLQ_V1.name;
const MQTT_STAGE = 'mqtt-bridge';

export interface DlqFilter {
  stage?: string;
  reason?: string;
  device?: string;
}

export interface DlqEntry {
  seq: number;
  subject: string;
  stage: string;
  reason: string;
  detail: string;
  originalSubject: string;
  device: string;
  time: string;
  size: number;
}

export interface DlqMessage extends DlqEntry {
  headers: Record<string, string>;
  /** The payload as text when it is UTF-8, and always as base64. */
  payload: { text?: string; base64: string };
}

export type Selection = { seqs: number[] } | { filter: DlqFilter; all: true };

export interface ReplayResult {
  replayed: number[];
  failed: Array<{ seq: number; error: string }>;
}

export class InvalidTenantError extends Error {
  constructor(tenant: string) {
    super(`tenant "${tenant}" is not a valid tenant id: use 1-64 letters, digits, "_" or "-"`);
  }
}

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * The DLQ as an operator uses it, always within one tenant: its subjects are
 * `iot.dlq.v1.<stage>.<tenant>`. Messages of unregistered devices, whose tenant is unknown,
 * sit under the tenant `_unknown`.
 */
export class DeadLetterStore {
  constructor(
    private readonly jsm: JetStreamManager,
    private readonly publisher: JetStreamPublisher,
    private readonly devices: { get(device: string): DeviceRecord | undefined },
  ) {}

  private subjectFilter(tenant: string, stage = '*'): string {
    if (!isValidToken(tenant)) throw new InvalidTenantError(tenant);
    return `iot.dlq.v1.${stage}.${tenant}`;
  }

  /** Walks the tenant's messages in stream order, from `afterSeq`, keeping those the filter takes. */
  async list(tenant: string, filter: DlqFilter, opts: { afterSeq?: number; limit?: number } = {}) {
    const limit = Math.min(opts.limit ?? 100, 1000);
    const items: DlqEntry[] = [];
    let seq = (opts.afterSeq ?? 0) + 1;
    const subj = this.subjectFilter(tenant, filter.stage && isValidToken(filter.stage) ? filter.stage : '*');
    while (items.length < limit) {
      const m = await this.jsm.direct.getMessage(DLQ, { seq, next_by_subj: subj });
      if (!m) break;
      seq = m.seq + 1;
      const entry = entryOf(m);
      if (matches(entry, filter)) items.push(entry);
    }
    return { items, nextAfterSeq: items.length === limit ? items[items.length - 1]!.seq : undefined };
  }

  async get(tenant: string, seq: number): Promise<DlqMessage | undefined> {
    const m = await this.jsm.direct.getMessage(DLQ, { seq }).catch(() => null);
    if (!m || !subjectMatcher([this.subjectFilter(tenant)])(m.subject)) return undefined;
    let text: string | undefined;
    try {
      text = textDecoder.decode(m.data);
    } catch {
      text = undefined;
    }
    return {
      ...entryOf(m),
      headers: headersOf(m),
      payload: { text, base64: Buffer.from(m.data).toString('base64') },
    };
  }

  private async select(tenant: string, sel: Selection): Promise<DlqMessage[]> {
    if ('seqs' in sel) {
      const found = await Promise.all(sel.seqs.map((s) => this.get(tenant, s)));
      return found.filter((m): m is DlqMessage => !!m);
    }
    const out: DlqMessage[] = [];
    let afterSeq: number | undefined;
    do {
      const page = await this.list(tenant, sel.filter, { afterSeq, limit: 1000 });
      for (const e of page.items) {
        const m = await this.get(tenant, e.seq);
        if (m) out.push(m);
      }
      afterSeq = page.nextAfterSeq;
    } while (afterSeq !== undefined);
    return out;
  }

  /**
   * Sends each selected message through the normal path again and removes it from the DLQ
   * once the republish is acknowledged. Bridge-stage messages (never accepted) are routed
   * with the registry as the bridge would; the others go back to their original subject.
   */
  async replay(tenant: string, sel: Selection): Promise<ReplayResult> {
    const result: ReplayResult = { replayed: [], failed: [] };
    for (const m of await this.select(tenant, sel)) {
      try {
        const { subject, headers } = this.route(m);
        // A new id per DLQ message: the original id is still inside the stream's duplicate
        // window when a fix is quick, and the same replay twice stays a single message.
        const msgId = `${m.headers[Headers.originalMsgId] ?? m.subject}:replay:${m.seq}`;
        await this.publisher.publish(subject, Buffer.from(m.payload.base64, 'base64'), {
          msgId,
          headers,
          traceparent: m.headers[Headers.traceparent],
        });
        await this.jsm.streams.deleteMessage(DLQ, m.seq, false);
        result.replayed.push(m.seq);
      } catch (e) {
        result.failed.push({ seq: m.seq, error: (e as Error).message });
      }
    }
    return result;
  }

  async purge(tenant: string, sel: Selection): Promise<{ purged: number[] }> {
    const purged: number[] = [];
    for (const m of await this.select(tenant, sel)) {
      if (await this.jsm.streams.deleteMessage(DLQ, m.seq, false)) purged.push(m.seq);
    }
    return { purged };
  }

  private route(m: DlqMessage): { subject: string; headers: Record<string, string> } {
    const headers = Object.fromEntries(
      Object.entries(m.headers).filter(
        ([k]) => !k.startsWith('iot-dlq-') && k !== Headers.originalSubject && k !== Headers.originalMsgId,
      ),
    );
    if (m.stage !== MQTT_STAGE) return { subject: m.originalSubject, headers };
    const record = this.devices.get(m.device);
    if (!record || record.state !== 'active')
      throw new Error(
        `device "${m.device}" is ${record ? record.state : 'still not registered'}: register or enable it first`,
      );
    headers[Headers.tenant] = record.tenant;
    headers[Headers.model] = m.originalSubject.startsWith('zenthos/')
      ? m.originalSubject.split('/')[1]!
      : record.model;
    const isStatus = m.originalSubject.endsWith('/status');
    return {
      subject: isStatus ? Subjects.status(record.tenant, m.device) : Subjects.raw(record.tenant, m.device),
      headers,
    };
  }
}

function headersOf(m: StoredMsg): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of m.header?.keys() ?? []) out[k] = m.header.get(k);
  return out;
}

function entryOf(m: StoredMsg): DlqEntry {
  const h = (k: string) => m.header?.get(k) ?? '';
  return {
    seq: m.seq,
    subject: m.subject,
    stage: h(Headers.dlqStage) || m.subject.split('.')[3]!,
    reason: h(Headers.dlqReason),
    detail: h(Headers.dlqDetail),
    originalSubject: h(Headers.originalSubject),
    device: h(Headers.device),
    time: m.time.toISOString(),
    size: m.data.byteLength,
  };
}

function matches(e: DlqEntry, f: DlqFilter): boolean {
  return (
    (!f.stage || e.stage === f.stage) &&
    (!f.reason || e.reason === f.reason) &&
    (!f.device || e.device === f.device)
  );
}
