import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Pool } from 'pg';
import type { CrlEntry, DeviceCa } from './device-ca';

/** Where registry entries go: the NATS KV bucket every service keeps a view of. */
export interface RegistrySink {
  put(device: string, record: unknown): Promise<void>;
  remove(device: string): Promise<void>;
}

interface Log {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/**
 * Publishes the registry outbox in order: each entry goes to the sink, then leaves the
 * outbox. Run after every change and on a timer, so a change made while NATS was away is
 * published when it is back; one run at a time.
 */
export class RegistryOutbox {
  private running?: Promise<number>;
  private again = false;
  private timer?: NodeJS.Timeout;
  /** Entries waiting, as of the last run (a gauge for operators). */
  backlog = 0;

  constructor(
    private readonly pool: Pool,
    private readonly sink: RegistrySink,
    private readonly log: Log,
    private readonly intervalMs = 2_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
    this.kick();
  }

  stop(): Promise<unknown> {
    clearInterval(this.timer);
    return this.running ?? Promise.resolve();
  }

  /** Publishes soon; a call during a run makes the run go round once more. */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.flush()
      .catch((e) => {
        this.log.warn({ err: String(e) }, 'device registry publish failed; will retry');
        return 0;
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves when everything queued so far is published (for tests and shutdown). */
  async settle(): Promise<void> {
    for (let i = 0; i < 50 && (this.running || (await this.pending()) > 0); i++) {
      this.kick();
      await (this.running ?? new Promise<void>((r) => setTimeout(r, 100)));
    }
  }

  private async pending(): Promise<number> {
    return (await this.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM auth_device_outbox`))
      .rows[0]!.n;
  }

  private async flush(): Promise<number> {
    let published = 0;
    for (;;) {
      const { rows } = await this.pool.query<{ id: string; device_id: string; record: unknown }>(
        `SELECT id, device_id, record FROM auth_device_outbox ORDER BY id LIMIT 500`,
      );
      this.backlog = rows.length;
      if (rows.length === 0) return published;
      for (const r of rows) {
        if (r.record === null) await this.sink.remove(r.device_id);
        else await this.sink.put(r.device_id, r.record);
        await this.pool.query(`DELETE FROM auth_device_outbox WHERE id = $1`, [r.id]);
        published++;
      }
    }
  }
}

/**
 * Keeps the device CA's CRL current: issued at start, after every revocation, and well
 * before it expires; held for `GET /v1/pki/crl` and written (atomically) to the file the
 * broker reads (mosquitto `crlfile`).
 */
export class CrlPublisher {
  private current?: { pem: string; der: Buffer; nextUpdate: Date; issuedAt: Date; entries: number };
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;

  constructor(
    private readonly ca: DeviceCa,
    private readonly entries: () => Promise<CrlEntry[]>,
    private readonly log: Log,
    private readonly file: string | undefined,
    /** Re-issue after this long even without a change (a third of the CRL's validity). */
    private readonly refreshMs: number,
  ) {}

  async start(): Promise<void> {
    await this.issue();
    this.timer = setInterval(() => this.changed(), Math.max(this.refreshMs, 1_000));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get crl() {
    return this.current;
  }

  /** A revocation happened (here or, on the timer, at another replica): issue a new CRL. */
  changed(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.issue()
      .catch((e) => this.log.warn({ err: String(e) }, 'CRL not issued; will retry'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.changed();
        }
      });
  }

  /** Resolves once the CRL includes every revocation made before the call. */
  async settle(): Promise<void> {
    this.changed();
    while (this.running) await this.running;
  }

  private async issue(): Promise<void> {
    const entries = await this.entries();
    const crl = await this.ca.crl(entries);
    this.current = { ...crl, issuedAt: new Date(), entries: entries.length };
    if (this.file) {
      mkdirSync(dirname(this.file), { recursive: true });
      const tmp = `${this.file}.${process.pid}.tmp`;
      writeFileSync(tmp, crl.pem);
      renameSync(tmp, this.file);
    }
  }
}
