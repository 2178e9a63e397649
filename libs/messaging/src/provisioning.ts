import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { Streams, type ConsumerContract, type StreamContract } from '@iot/contracts';

export interface ProvisionOptions {
  /** 1 locally; 3 on a production cluster (R3). */
  replicas: number;
}

/** Creates the stream, or updates its limits to the contract's: safe to run at every start. */
export async function ensureStream(
  jsm: JetStreamManager,
  s: StreamContract,
  { replicas }: ProvisionOptions,
): Promise<void> {
  const config = {
    name: s.name,
    subjects: [...s.subjects],
    description: s.description,
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(s.maxAgeMs),
    max_bytes: s.maxBytes,
    duplicate_window: nanos(s.duplicateWindowMs),
    num_replicas: replicas,
    allow_direct: s.allowDirect ?? false,
  };
  try {
    await jsm.streams.info(s.name);
    await jsm.streams.update(s.name, config);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    try {
      await jsm.streams.add(config);
    } catch (addError) {
      // Another replica created it between our info and add: that is the outcome we wanted.
      if (!String(addError).includes('already in use')) throw addError;
    }
  }
}

export async function ensureAllStreams(nc: NatsConnection, opts: ProvisionOptions): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const s of Object.values(Streams)) await ensureStream(jsm, s, opts);
}

/** Creates or updates the durable pull consumer of a contract. */
export async function ensureConsumer(jsm: JetStreamManager, c: ConsumerContract): Promise<void> {
  const config = {
    durable_name: c.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    // nats-server 2.9 (Debian) knows only the single filter_subject; 2.10+ takes several.
    ...(c.filterSubjects.length === 1
      ? { filter_subject: c.filterSubjects[0] }
      : { filter_subjects: [...c.filterSubjects] }),
    max_deliver: c.maxDeliver,
    ack_wait: nanos(c.ackWaitMs),
    max_ack_pending: c.maxAckPending,
  };
  try {
    await jsm.consumers.info(c.stream, c.durable);
    const { durable_name: _d, deliver_policy: _p, ...update } = config;
    await jsm.consumers.update(c.stream, c.durable, update);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await jsm.consumers.add(c.stream, config);
  }
}

export function isNotFound(e: unknown): boolean {
  const text = String((e as Error)?.message ?? e);
  return /not found/i.test(text);
}
