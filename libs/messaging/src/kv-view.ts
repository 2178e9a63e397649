import { Kvm, KvWatchInclude, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@iot/observability';
import { whenJetStreamAnswers } from './provisioning';
import {
  DEVICE_REGISTRY_BUCKET,
  NORMALIZER_PROFILES_BUCKET,
  NORMALIZER_PROFILES_HISTORY,
  Validators,
  deviceKeyHash,
  isDeviceKey,
  type DeviceRecord,
  type ModelProfile,
} from '@iot/contracts';

export interface KvBucketOptions {
  /** Copies of the bucket's stream: 3 on a production cluster. */
  replicas?: number;
  /** Values kept per key: 1 for a cache, more where earlier versions are read back. */
  history?: number;
}

/**
 * A current, in-memory view of a JetStream KV bucket: loaded at start, then kept up to date
 * by a watch, so that hot paths look up in a Map instead of calling a database.
 */
export class KvView<T> {
  private readonly entries = new Map<string, T>();
  private kv: KV | undefined;
  private stopWatch: (() => void) | undefined;
  private loaded = false;
  private changes = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly bucket: string,
    private readonly parse: (value: unknown) => T,
    private readonly logger: Logger,
    private readonly options: KvBucketOptions = {},
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get ready(): boolean {
    return this.loaded;
  }

  get(key: string): T | undefined {
    return this.entries.get(key);
  }

  values(): IterableIterator<T> {
    return this.entries.values();
  }

  /** Changes with every update seen, so that indexes derived from the view know when to rebuild. */
  get version(): number {
    return this.changes;
  }

  async start(): Promise<void> {
    this.kv = await whenJetStreamAnswers(
      `bucket ${this.bucket}`,
      () => openBucket(this.nc, this.bucket, this.options),
      this.logger,
    );
    // The watch first replays every current value, then follows changes, forever.
    const iter = await this.kv.watch({ include: KvWatchInclude.LastValue });
    // An empty bucket replays nothing; otherwise the replay ends at the entry with delta 0.
    if ((await this.kv.status()).values === 0) this.loaded = true;
    this.stopWatch = () => iter.stop();
    void (async () => {
      for await (const e of iter) {
        if (e.delta === 0) this.loaded = true;
        this.changes++;
        if (e.operation === 'DEL' || e.operation === 'PURGE') {
          this.entries.delete(e.key);
          continue;
        }
        try {
          this.entries.set(e.key, this.parse(e.json()));
        } catch (err) {
          this.logger.error(
            { bucket: this.bucket, key: e.key, err: String(err) },
            'ignoring an invalid KV entry',
          );
        }
      }
    })();
    const deadline = Date.now() + 10_000;
    while (!this.loaded && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  async put(key: string, value: T): Promise<void> {
    await this.kv!.put(key, JSON.stringify(value));
  }

  async remove(key: string): Promise<void> {
    await this.kv!.delete(key);
  }

  stop(): void {
    this.stopWatch?.();
  }
}

/** The device registry as every service sees it: a current, validated, in-memory view. */
export function deviceRegistryView(nc: NatsConnection, logger: Logger, replicas = 1): KvView<DeviceRecord> {
  return new KvView(nc, DEVICE_REGISTRY_BUCKET, (v) => (Validators.deviceRecord.assert(v), v), logger, {
    replicas,
  });
}

/**
 * Devices by id and by device key, from the registry view: what the bridge asks of every
 * message and the auth service of every broker connection. The key index is rebuilt only
 * after the registry changed, so a lookup is one hash and one Map read.
 */
export class DeviceDirectory {
  private keyIndex = new Map<string, string>();
  private indexedAt = -1;

  constructor(readonly view: KvView<DeviceRecord>) {}

  get(device: string): DeviceRecord | undefined {
    return this.view.get(device);
  }

  /** The device a key belongs to, or undefined for a malformed, unknown or revoked key. */
  byKey(key: string): DeviceRecord | undefined {
    if (!isDeviceKey(key)) return undefined;
    if (this.indexedAt !== this.view.version) {
      const index = new Map<string, string>();
      for (const r of this.view.values()) for (const h of r.key_hashes ?? []) index.set(h, r.device);
      this.keyIndex = index;
      this.indexedAt = this.view.version;
    }
    const device = this.keyIndex.get(deviceKeyHash(key));
    return device === undefined ? undefined : this.view.get(device);
  }
}

/** Tenants' normalizer profiles, key `<tenant>.<model>`, validated and kept current. */
export function normalizerProfilesView(
  nc: NatsConnection,
  logger: Logger,
  replicas = 1,
): KvView<ModelProfile> {
  return new KvView(nc, NORMALIZER_PROFILES_BUCKET, (v) => (Validators.modelProfile.assert(v), v), logger, {
    replicas,
    history: NORMALIZER_PROFILES_HISTORY,
  });
}

/** Opens a bucket, creating it with these options when it does not exist yet. */
export function openBucket(nc: NatsConnection, bucket: string, options: KvBucketOptions = {}): Promise<KV> {
  return new Kvm(nc).create(bucket, { history: options.history ?? 1, replicas: options.replicas ?? 1 });
}

/** Writes device records straight into the registry bucket: for tests that run without the auth service, which owns it. */
export async function putDeviceRecords(
  nc: NatsConnection,
  bucket: string,
  records: Array<{ device: string } & Record<string, unknown>>,
  replicas = 1,
): Promise<void> {
  const kv = await new Kvm(nc).create(bucket, { history: 1, replicas });
  for (const r of records) await kv.put(r.device, JSON.stringify(r));
}
