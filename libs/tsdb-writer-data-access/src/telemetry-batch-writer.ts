import { DatabaseError, Pool, type PoolClient } from 'pg';
import type { NormalizedTelemetry } from '@iot/contracts';

export type StoreEngine = 'timescaledb' | 'postgres-partitions';

/** A text as an element of a PostgreSQL array literal: quoted, with `\` and `"` escaped. */
function element(text: string): string {
  return ESCAPED.test(text) ? `"${text.replace(ESCAPED_ALL, '\\$&')}"` : `"${text}"`;
}
const ESCAPED = /[\\"]/;
const ESCAPED_ALL = /[\\"]/g;

/**
 * The rows of one write, one per point, as the eight columns the insert takes, each sent
 * as one PostgreSQL array literal (`{"a","b"}`, `{1,2}`). This is the writer's hot path: no
 * object per row, and a message's tenant, device and times are turned into text once for
 * all its points, not once per row by node-postgres (2-3 µs per message instead of 6-9).
 */
export class TelemetryColumns {
  private readonly tenant: string[] = [];
  private readonly device: string[] = [];
  private readonly metric: string[] = [];
  private readonly ts: string[] = [];
  private readonly value: string[] = [];
  private readonly unit: string[] = [];
  private readonly quality: string[] = [];
  private readonly receivedAt: string[] = [];

  static of(messages: readonly NormalizedTelemetry[]): TelemetryColumns {
    const c = new TelemetryColumns();
    for (const m of messages) c.addMessage(m);
    return c;
  }

  get rows(): number {
    return this.tenant.length;
  }

  addMessage(m: NormalizedTelemetry): void {
    const tenant = element(m.tenant);
    const device = element(m.device);
    const ts = String(m.ts);
    const receivedAt = String(m.receivedAt);
    for (const p of m.points) {
      this.tenant.push(tenant);
      this.device.push(device);
      this.metric.push(element(p.metric));
      this.ts.push(ts);
      this.value.push(String(p.value));
      this.unit.push(element(p.unit));
      this.quality.push(element(p.quality));
      this.receivedAt.push(receivedAt);
    }
  }

  /** The parameters $1..$8 of the insert. */
  params(): string[] {
    const cols = [
      this.tenant,
      this.device,
      this.metric,
      this.ts,
      this.value,
      this.unit,
      this.quality,
      this.receivedAt,
    ];
    return cols.map((c) => `{${c.join(',')}}`);
  }
}

const INSERT_ROWS = `
  INSERT INTO telemetry (tenant_id, device_id, metric, ts, value, unit, quality, received_at)
  SELECT t, d, m, to_timestamp(ts / 1000.0), v, u, q, to_timestamp(r / 1000.0)
  FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::text[], $7::text[], $8::float8[])
       AS x(t, d, m, ts, v, u, q, r)`;

// On plain PostgreSQL the rollup counts only rows this statement inserted (RETURNING), so a
// redelivered batch, whose rows conflict, adds nothing to it: the rollup is exactly-once too.
// Two batches with the same row in flight at once: the second waits on the first's key lock
// and then inserts nothing (the row is there), so the rollup counts it once either way.
const withRollup = (insertRows: string) => `
  WITH ins AS (${insertRows} RETURNING tenant_id, device_id, metric, ts, value)
  INSERT INTO telemetry_5m AS r (tenant_id, device_id, metric, bucket, count, sum, min, max)
  SELECT tenant_id, device_id, metric, date_bin('5 minutes', ts, timestamptz '2000-01-01'),
         count(*), sum(value), min(value), max(value)
  FROM ins GROUP BY 1, 2, 3, 4
  -- The same lock order in every transaction: batches written at once cannot deadlock here.
  ORDER BY 1, 2, 3, 4
  ON CONFLICT (tenant_id, device_id, metric, bucket) DO UPDATE SET
    count = r.count + EXCLUDED.count, sum = r.sum + EXCLUDED.sum,
    min = LEAST(r.min, EXCLUDED.min), max = GREATEST(r.max, EXCLUDED.max)`;

/**
 * Two forms of the same write. `fresh` is a plain INSERT: it fails whole (unique_violation)
 * when one row is already stored. `idempotent` skips stored rows with ON CONFLICT DO NOTHING,
 * which costs PostgreSQL a third more per row (a speculative insertion: an index probe before
 * the insert and one more WAL record after it), measured in docs/performance.md.
 */
export const STATEMENTS: Record<StoreEngine, { fresh: string; idempotent: string }> = {
  timescaledb: { fresh: INSERT_ROWS, idempotent: `${INSERT_ROWS} ON CONFLICT DO NOTHING` },
  'postgres-partitions': {
    fresh: withRollup(INSERT_ROWS),
    idempotent: withRollup(`${INSERT_ROWS} ON CONFLICT DO NOTHING`),
  },
};

/** After a batch met stored rows, the batches of the next 30 s are written the idempotent way. */
const IDEMPOTENT_SPELL_MS = 30_000;

const UNIQUE_VIOLATION = '23505';

/**
 * Writes batches of points in one transaction each, idempotently: the primary key
 * (tenant, device, metric, ts) makes a repeated row a no-op. Resolves once committed.
 *
 * A batch is first written as fresh rows, the common case. When that fails because a row
 * is already stored (a redelivery after a crash, a device repeating a timestamp), nothing of
 * it was written, and it is written again skipping the stored rows. Redeliveries come in
 * runs, so for IDEMPOTENT_SPELL_MS after one every batch takes the idempotent form at once.
 */
export class TelemetryBatchWriter {
  private engine: StoreEngine | undefined;
  private idempotentUntil = 0;

  constructor(private readonly pool: Pool) {}

  static connect(url: string, maxConnections = 4): TelemetryBatchWriter {
    const pool = new Pool({ connectionString: url, max: maxConnections, connectionTimeoutMillis: 5_000 });
    // An idle client losing its server (database restart) must not crash the process.
    pool.on('error', () => undefined);
    return new TelemetryBatchWriter(pool);
  }

  async detectEngine(): Promise<StoreEngine> {
    const { rows } = await this.pool.query(`SELECT value FROM telemetry_settings WHERE key = 'engine'`);
    if (!rows[0])
      throw new Error('telemetry_settings has no engine row: run the migrations first (platform migrate)');
    this.engine = rows[0].value as StoreEngine;
    return this.engine;
  }

  /**
   * Inserts the rows; returns how many were new (the rest were already stored) on
   * TimescaleDB, -1 on plain PostgreSQL, where the statement returns the rollup's rows.
   */
  async write(columns: TelemetryColumns): Promise<number> {
    if (columns.rows === 0) return 0;
    const engine = this.engine ?? (await this.detectEngine());
    const cols = columns.params();
    const client: PoolClient = await this.pool.connect();
    // A checked-out client whose server goes away between two queries emits 'error'; the
    // pool listens only to idle clients, and an unheard 'error' would end the process. The
    // failed query rejects anyway, and the batch is retried.
    const onError = () => undefined;
    client.on('error', onError);
    try {
      // One statement is its own transaction: the rows and the rollup commit together or not
      // at all, in one round trip instead of three (BEGIN, the statement, COMMIT).
      const sql = STATEMENTS[engine];
      let res;
      if (Date.now() < this.idempotentUntil) res = await client.query(sql.idempotent, cols);
      else
        try {
          res = await client.query(sql.fresh, cols);
        } catch (e) {
          if (!(e instanceof DatabaseError && e.code === UNIQUE_VIOLATION)) throw e;
          this.idempotentUntil = Date.now() + IDEMPOTENT_SPELL_MS;
          res = await client.query(sql.idempotent, cols);
        }
      return engine === 'timescaledb' ? (res.rowCount ?? 0) : -1;
    } finally {
      client.removeListener('error', onError);
      client.release();
    }
  }

  /** Creates daily partitions ahead and drops those past retention (plain PostgreSQL only). */
  async maintainPartitions(daysAhead = 7): Promise<void> {
    const engine = this.engine ?? (await this.detectEngine());
    if (engine !== 'postgres-partitions') return;
    await this.pool.query('SELECT telemetry_ensure_partitions(1, $1)', [daysAhead]);
    await this.pool.query('SELECT telemetry_apply_retention()');
  }

  async ping(): Promise<boolean> {
    await this.pool.query('SELECT 1');
    return true;
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
