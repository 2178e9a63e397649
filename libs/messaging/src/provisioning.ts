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

/**
 * Whether a JetStream API error is a passing state of the servers rather than a fault of the
 * request: a request timeout or "no responders" while a cluster elects its meta leader, or
 * JetStream reporting itself temporarily unavailable.
 */
export function isJetStreamUnavailable(e: unknown): boolean {
  const text = String((e as Error)?.message ?? e).toLowerCase();
  const code = String((e as { code?: unknown })?.code ?? '');
  return (
    code === 'TIMEOUT' ||
    code === '503' ||
    /timeout|no responders|temporarily unavailable|jetstream not (enabled|ready)|no suitable peers|insufficient resources/.test(
      text,
    )
  );
}

/**
 * Runs a provisioning step until JetStream answers it: a service started while the cluster
 * is still forming (or a node is away) waits and says so, instead of exiting. Other errors
 * (a contract the server refuses) are thrown at once.
 */
export async function whenJetStreamAnswers<T>(
  what: string,
  step: () => Promise<T>,
  logger: { warn(o: object, msg: string): void },
  maxDelayMs = 5_000,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (e) {
      if (!isJetStreamUnavailable(e)) throw e;
      const delayMs = Math.min(maxDelayMs, 250 * 2 ** Math.min(attempt, 5));
      logger.warn(
        { attempt, delayMs, err: String((e as Error)?.message ?? e) },
        `${what}: JetStream does not answer yet; retrying`,
      );
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}
