import { Kvm, KvWatchInclude, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@iot/observability';
import { DEVICE_REGISTRY_BUCKET, Validators, type DeviceRecord } from '@iot/contracts';

/**
 * A current, in-memory view of a JetStream KV bucket: loaded at start, then kept up to date
 * by a watch, so that hot paths look up in a Map instead of calling a database.
 */
export class KvView<T> {
  private readonly entries = new Map<string, T>();
  private kv: KV | undefined;
  private stopWatch: (() => void) | undefined;
  private loaded = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly bucket: string,
    private readonly parse: (value: unknown) => T,
    private readonly logger: Logger,
    private readonly replicas = 1,
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

  async start(): Promise<void> {
    this.kv = await new Kvm(this.nc).create(this.bucket, { history: 1, replicas: this.replicas });
    // The watch first replays every current value, then follows changes, forever.
    const iter = await this.kv.watch({ include: KvWatchInclude.LastValue });
    // An empty bucket replays nothing; otherwise the replay ends at the entry with delta 0.
    if ((await this.kv.status()).values === 0) this.loaded = true;
    this.stopWatch = () => iter.stop();
    void (async () => {
      for await (const e of iter) {
        if (e.delta === 0) this.loaded = true;
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

  stop(): void {
    this.stopWatch?.();
  }
}

/** The device registry as every service sees it: a current, validated, in-memory view. */
export function deviceRegistryView(nc: NatsConnection, logger: Logger, replicas = 1): KvView<DeviceRecord> {
  return new KvView(
    nc,
    DEVICE_REGISTRY_BUCKET,
    (v) => (Validators.deviceRecord.assert(v), v),
    logger,
    replicas,
  );
}

/** Writes device records into the registry bucket (used by seeding and tests until auth owns it). */
export async function putDeviceRecords(
  nc: NatsConnection,
  bucket: string,
  records: Array<{ device: string } & Record<string, unknown>>,
  replicas = 1,
): Promise<void> {
  const kv = await new Kvm(nc).create(bucket, { history: 1, replicas });
  for (const r of records) await kv.put(r.device, JSON.stringify(r));
}
