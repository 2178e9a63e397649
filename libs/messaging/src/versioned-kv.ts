import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { openBucket, type KvBucketOptions } from './kv-view';

export interface Version<T> {
  revision: number;
  at: string;
  /** Absent where the key was deleted at this revision. */
  value?: T;
}

/**
 * Values with their history, on a JetStream KV bucket: every put is a new revision that can
 * be read back and restored, so a configuration change can be audited and rolled back.
 */
export class VersionedKv<T> {
  private constructor(
    private readonly kv: KV,
    private readonly parse: (value: unknown) => T,
  ) {}

  static async open<T>(
    nc: NatsConnection,
    bucket: string,
    parse: (value: unknown) => T,
    options: KvBucketOptions,
  ): Promise<VersionedKv<T>> {
    return new VersionedKv(await openBucket(nc, bucket, options), parse);
  }

  async get(key: string): Promise<Version<T> | undefined> {
    const e = await this.kv.get(key);
    if (!e || e.operation !== 'PUT') return undefined;
    return this.versionOf(e);
  }

  /** Stores a new revision and returns its number. */
  async put(key: string, value: T): Promise<number> {
    return this.kv.put(key, JSON.stringify(value));
  }

  async delete(key: string): Promise<boolean> {
    if (!(await this.get(key))) return false;
    await this.kv.delete(key);
    return true;
  }

  /** Earlier and current revisions of one key, newest first. */
  async history(key: string): Promise<Array<Version<T>>> {
    const out: Array<Version<T>> = [];
    for await (const e of await this.kv.history({ key })) out.push(this.versionOf(e));
    return out.reverse();
  }

  /** Keys matching a filter such as `tenant.>`. */
  async keys(filter: string): Promise<string[]> {
    const out: string[] = [];
    for await (const k of await this.kv.keys(filter)) out.push(k);
    return out.sort();
  }

  private versionOf(e: KvEntry): Version<T> {
    return {
      revision: e.revision,
      at: e.created.toISOString(),
      value: e.operation === 'PUT' ? this.parse(e.json()) : undefined,
    };
  }
}
