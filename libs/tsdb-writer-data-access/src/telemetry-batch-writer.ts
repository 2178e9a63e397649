import { DatabaseError, Pool, type PoolClient } from 'pg';
import type { NormalizedTelemetry } from '@iot/contracts';

export interface TelemetryRow {
  tenant: string;
  device: string;
  metric: string;
  ts: number;
  value: number;
  unit: string;
  quality: string;
  receivedAt: number;
}

export type StoreEngine = 'timescaledb' | 'postgres-partitions';

/** Flattens canonical messages into rows: one row per point. */
export function rowsOf(messages: NormalizedTelemetry[]): TelemetryRow[] {
  const rows: TelemetryRow[] = [];
  for (const m of messages)
    for (const p of m.points)
      rows.push({
        tenant: m.tenant,
        device: m.device,
        metric: p.metric,
        ts: m.ts,
        value: p.value,
        unit: p.unit,
        quality: p.quality,
        receivedAt: m.receivedAt,
      });
  return rows;
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
const STATEMENTS: Record<StoreEngine, { fresh: string; idempotent: string }> = {
  timescaledb: { fresh: INSERT_ROWS, idempotent: `${INSERT_ROWS} ON CONFLICT DO NOTHING` },
  'postgres-partitions': {
    fresh: withRollup(INSERT_ROWS),
    idempotent: withRollup(`${INSERT_ROWS} ON CONFLICT DO NOTHING`),
  },
};

/** After a batch met stored rows, the batches of the next 30 s are written the idempotent way. */
export const IDEMPOTENT_SPELL_MS = 30_000;

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

  /** Inserts the rows; returns how many were new (the rest were already stored). */
  async write(rows: TelemetryRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    const engine = this.engine ?? (await this.detectEngine());
    const cols: [string[], string[], string[], number[], number[], string[], string[], number[]] = [
      [],
      [],
      [],
      [],
      [],
      [],
      [],
      [],
    ];
    for (const r of rows) {
      cols[0].push(r.tenant);
      cols[1].push(r.device);
      cols[2].push(r.metric);
      cols[3].push(r.ts);
      cols[4].push(r.value);
      cols[5].push(r.unit);
      cols[6].push(r.quality);
      cols[7].push(r.receivedAt);
    }
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
