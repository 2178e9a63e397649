import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerInfo,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { Streams, type ConsumerContract, type StreamContract } from '@iot/contracts';

export interface ProvisionOptions {
  /** 1 locally; 3 on a production cluster (R3). */
  replicas: number;
  /**
   * The JetStream file storage, in bytes, the platform's streams may reserve together on a
   * server (NATS_STREAM_STORAGE); unset: each stream's own limit.
   */
  storageBytes?: number;
}

const MIB = 1024 ** 2;

/**
 * Each stream's `max_bytes` within a storage budget: the contracts' own limits when they fit
 * in it, else each cut in proportion (rounded down to whole MiB, at least 1 MiB: 0 would
 * mean no limit). nats-server reserves a stream's `max_bytes` on every server holding a
 * replica of it and refuses a stream past its `jetstream.max_file_store` ("insufficient
 * storage resources available"); the contracts ask 28 GiB in all, more than a small cluster
 * has.
 */
export function streamMaxBytes(
  streams: readonly StreamContract[],
  storageBytes?: number,
): Map<string, number> {
  const total = streams.reduce((sum, s) => sum + s.maxBytes, 0);
  const scale = storageBytes === undefined || storageBytes >= total ? 1 : storageBytes / total;
  return new Map(
    streams.map((s) => [
      s.name,
      scale === 1 ? s.maxBytes : Math.max(MIB, Math.floor((s.maxBytes * scale) / MIB) * MIB),
    ]),
  );
}

/** nats-server's error code for a stream whose limits exceed the storage left to JetStream. */
const STORAGE_RESOURCES_EXCEEDED = 10047;

function isStorageExceeded(e: unknown): boolean {
  return e instanceof JetStreamApiError && e.code === STORAGE_RESOURCES_EXCEEDED;
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(bytes < 1024 ** 3 ? 2 : 1)} GiB`;

/**
 * Creates the stream, or updates its limits to the contract's: safe to run at every start.
 * `maxBytes` overrides the contract's limit (see {@link streamMaxBytes}).
 */
export async function ensureStream(
  jsm: JetStreamManager,
  s: StreamContract,
  { replicas }: ProvisionOptions,
  maxBytes = s.maxBytes,
): Promise<void> {
  const config = {
    name: s.name,
    subjects: [...s.subjects],
    description: s.description,
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(s.maxAgeMs),
    max_bytes: maxBytes,
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

/**
 * Creates or updates every stream of the contracts. Where the servers have less storage than
 * the streams ask, the error says how much is asked and what to set.
 */
export async function ensureAllStreams(nc: NatsConnection, opts: ProvisionOptions): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const streams = Object.values(Streams);
  const limits = streamMaxBytes(streams, opts.storageBytes);
  const asked = [...limits.values()].reduce((a, b) => a + b, 0);
  for (const s of streams) {
    const maxBytes = limits.get(s.name)!;
    try {
      await ensureStream(jsm, s, opts, maxBytes);
    } catch (e) {
      if (!isStorageExceeded(e)) throw e;
      throw new Error(
        `stream ${s.name} (max_bytes ${gib(maxBytes)}) does not fit in the JetStream storage left on the servers: ` +
          `the platform's streams ask ${gib(asked)} in all on each server holding a replica` +
          (opts.storageBytes === undefined ? ' (their own limits)' : ` (NATS_STREAM_STORAGE)`) +
          `. Set NATS_STREAM_STORAGE to what they may take (e.g. 80% of jetstream.max_file_store), ` +
          `or raise max_file_store. nats-server said: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
}

/**
 * Creates or updates the durable pull consumer of a contract. nats-server before 2.10 keeps
 * an existing durable's filter through an update (`keptFilter` says so).
 */
export async function ensureConsumer(jsm: JetStreamManager, c: ConsumerContract): Promise<ConsumerInfo> {
  const config = {
    durable_name: c.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    // nats-server 2.9 (Debian) knows only the single filter_subject; 2.10+ takes several.
    ...(c.filterSubjects.length === 0
      ? {}
      : c.filterSubjects.length === 1
        ? { filter_subject: c.filterSubjects[0] }
        : { filter_subjects: [...c.filterSubjects] }),
    max_deliver: c.maxDeliver,
    ack_wait: nanos(c.ackWaitMs),
    max_ack_pending: c.maxAckPending,
  };
  try {
    await jsm.consumers.info(c.stream, c.durable);
    const { durable_name: _d, deliver_policy: _p, ...update } = config;
    return await jsm.consumers.update(c.stream, c.durable, update);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    return await jsm.consumers.add(c.stream, config);
  }
}

/** The filter a durable has where it is not its contract's (nats-server 2.9 kept it), else undefined. */
export function keptFilter(info: ConsumerInfo, c: ConsumerContract): string[] | undefined {
  const { filter_subject: one, filter_subjects: several } = info.config;
  const has = several?.length ? several : one ? [one] : [];
  const same = has.length === c.filterSubjects.length && has.every((f) => c.filterSubjects.includes(f));
  return same ? undefined : has;
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
