import type { MigrationInterface, QueryRunner } from 'typeorm';
import { isPartitionedStore } from './plain-postgres';
import { ENSURE_PARTITIONS_V1 } from './1763900000000-telemetry-store';
import { APPLY_RETENTION_V2 } from './1764800000000-default-partition-retention';
import { REFRESH_ROLLUP_V1 } from './1764900000000-rollup-refresh';

/** `text` with `from` replaced by `to`; throws when `from` is not in it (an edited migration). */
function replacing(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`migration SeriesKey: '${from.trim().slice(0, 60)}' not found`);
  return text.replace(from, () => to); // a function: `to` holds `$'`, which a string would expand
}

/** Daily partitions of `telemetry_points`, named telemetry_points_pYYYYMMDD. */
const ENSURE_PARTITIONS_V2 = replacing(
  replacing(ENSURE_PARTITIONS_V1, `'telemetry_p' || to_char`, `'telemetry_points_p' || to_char`),
  'PARTITION OF telemetry FOR',
  'PARTITION OF telemetry_points FOR',
);

/**
 * Retention over both tables: the daily partitions of `telemetry_points` and of the table
 * before this migration (`telemetry_v1`, which receives no more rows), the rows of both
 * default partitions, and the rollup rows, past their windows.
 */
const APPLY_RETENTION_V3 = replacing(
  replacing(
    APPLY_RETENTION_V2,
    `WHERE i.inhparent = 'telemetry'::regclass AND c.relname ~ '^telemetry_p[0-9]{8}$'
                   AND to_date(substr(c.relname, 12), 'YYYYMMDD')`,
    `WHERE i.inhparent IN ('telemetry_points'::regclass, 'telemetry_v1'::regclass)
                   AND c.relname ~ '^telemetry_(points_)?p[0-9]{8}$'
                   AND to_date(right(c.relname, 8), 'YYYYMMDD')`,
  ),
  'DELETE FROM telemetry_default WHERE ts < now() - raw_keep;',
  `DELETE FROM telemetry_points_default WHERE ts < now() - raw_keep;
        DELETE FROM telemetry_default WHERE ts < now() - raw_keep;`,
);

const REFRESH_INSERT_V1 = `
          INSERT INTO telemetry_5m AS r (tenant_id, device_id, metric, bucket, count, sum, min, max)
            SELECT tenant_id, device_id, metric, b, count(*), sum(value), min(value), max(value)
            FROM telemetry WHERE ts >= b AND ts < b + interval '5 minutes'
            GROUP BY 1, 2, 3
`;

/**
 * The rollup's refresh, computing a bucket from both tables: the new points grouped by series
 * first (an integer key, then a thousand series joined, not every row), and the old table's
 * rows as before.
 */
const REFRESH_ROLLUP_V2 = replacing(
  REFRESH_ROLLUP_V1,
  REFRESH_INSERT_V1,
  `
          INSERT INTO telemetry_5m AS r (tenant_id, device_id, metric, bucket, count, sum, min, max)
            SELECT tenant_id, device_id, metric, b, sum(n)::bigint, sum(total), min(lo), max(hi) FROM (
              SELECT s.tenant_id, s.device_id, s.metric, p.n, p.total, p.lo, p.hi
              FROM (SELECT series_id, count(*) AS n, sum(value) AS total, min(value) AS lo, max(value) AS hi
                    FROM telemetry_points WHERE ts >= b AND ts < b + interval '5 minutes'
                    GROUP BY series_id) p
              JOIN telemetry_series s ON s.series_id = p.series_id
              UNION ALL
              SELECT tenant_id, device_id, metric, count(*), sum(value), min(value), max(value)
              FROM telemetry_v1 WHERE ts >= b AND ts < b + interval '5 minutes'
              GROUP BY 1, 2, 3
            ) x
            GROUP BY 1, 2, 3
`,
);

const POINT_COLUMNS = `
  series_id   integer          NOT NULL,  -- telemetry_series
  ts          timestamptz      NOT NULL,  -- event time from the device
  value       double precision NOT NULL,
  quality     text             NOT NULL,  -- good | clamped | out-of-range | skewed
  received_at timestamptz      NOT NULL,  -- ingest time at the bridge
  PRIMARY KEY (series_id, ts)`;

/** What readers see: the columns `telemetry` always had, old rows and new. */
const TELEMETRY_VIEW = `
      CREATE VIEW telemetry AS
      SELECT s.tenant_id, s.device_id, s.metric, p.ts, p.value, s.unit, p.quality, p.received_at
      FROM telemetry_points p JOIN telemetry_series s ON s.series_id = p.series_id
      UNION ALL
      SELECT tenant_id, device_id, metric, ts, value, unit, quality, received_at FROM telemetry_v1`;

/**
 * The key of a stored point becomes `(series_id, ts)`, the series (tenant, device, metric,
 * unit) in a table of their own: PostgreSQL's B-tree compared four columns, three of them text,
 * for every row it inserted. Copying the same 1,000,000 rows cost the COPY's backend 3.1-3.3 s
 * of CPU against 5.9-6.4, and 105 against 186 MB on disk (docs/performance.md).
 *
 * - `telemetry_series`: one row per series, numbered once; the writer keeps the numbers it has
 *   met and asks for the others (TelemetryBatchWriter). No foreign key from the points: its
 *   check per row would cost what the narrow key saves, and series are never deleted.
 * - `telemetry_points`: the points, `(series_id, ts)` their primary key (the writer's
 *   idempotence: a point stored again is the same key).
 * - `telemetry` becomes a view with the columns it always had, so that no reader changes: the
 *   new points joined to their series, and the rows stored before this migration.
 *
 * The rows stored before are not copied (seven days of them may be billions): the table is
 * renamed `telemetry_v1` and read through the view until retention has emptied it. On
 * TimescaleDB the continuous aggregate over it is renamed `telemetry_5m_v1` and kept for its
 * year; a new one counts the points by series, and `telemetry_5m` becomes a view over both,
 * grouped by tenant, device and metric as before. On plain PostgreSQL `telemetry_5m` stays the
 * table the writer materializes, from the `telemetry` view; partitions are made for
 * `telemetry_points` and retention drops those of both tables.
 */
export class SeriesKey1765000000000 implements MigrationInterface {
  name = 'SeriesKey1765000000000';

  async up(q: QueryRunner): Promise<void> {
    const partitioned = await isPartitionedStore(q);
    await q.query(`
      CREATE TABLE telemetry_series (
        series_id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        tenant_id text NOT NULL,
        device_id text NOT NULL,
        metric    text NOT NULL,
        unit      text NOT NULL,  -- canonical UCUM unit
        UNIQUE (tenant_id, device_id, metric, unit)
      )`);
    // Readers ask for a device's series by its id alone (device ids are unique across tenants).
    await q.query(`CREATE INDEX telemetry_series_device ON telemetry_series (device_id)`);
    await q.query(`ALTER TABLE telemetry RENAME TO telemetry_v1`);

    if (!partitioned) {
      await q.query(`ALTER MATERIALIZED VIEW telemetry_5m RENAME TO telemetry_5m_v1`);
      await q.query(`CREATE TABLE telemetry_points (${POINT_COLUMNS})`);
      await q.query(
        `SELECT create_hypertable('telemetry_points', 'ts', chunk_time_interval => interval '1 day')`,
      );
      await q.query(
        `ALTER TABLE telemetry_points SET (timescaledb.compress, timescaledb.compress_segmentby = 'series_id', timescaledb.compress_orderby = 'ts')`,
      );
      await q.query(`SELECT add_compression_policy('telemetry_points', interval '2 days')`);
      await q.query(`SELECT add_retention_policy('telemetry_points', interval '7 days')`);
      await q.query(`
        CREATE MATERIALIZED VIEW telemetry_5m_series WITH (timescaledb.continuous) AS
        SELECT series_id, time_bucket(interval '5 minutes', ts) AS bucket,
               count(*)::bigint AS count, sum(value) AS sum, min(value) AS min, max(value) AS max
        FROM telemetry_points GROUP BY series_id, bucket WITH NO DATA`);
      await q.query(`SELECT add_continuous_aggregate_policy('telemetry_5m_series',
        start_offset => interval '1 day', end_offset => interval '5 minutes', schedule_interval => interval '1 minute')`);
      await q.query(`SELECT add_retention_policy('telemetry_5m_series', interval '1 year')`);
      await q.query(TELEMETRY_VIEW);
      await q.query(`
        CREATE VIEW telemetry_5m AS
        SELECT tenant_id, device_id, metric, bucket,
               sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max
        FROM (
          SELECT s.tenant_id, s.device_id, s.metric, c.bucket, c.count, c.sum, c.min, c.max
          FROM telemetry_5m_series c JOIN telemetry_series s ON s.series_id = c.series_id
          UNION ALL
          SELECT tenant_id, device_id, metric, bucket, count, sum, min, max FROM telemetry_5m_v1
        ) r
        GROUP BY tenant_id, device_id, metric, bucket`);
      return;
    }

    // The rollup's refresh summarizes the partitions of the index named telemetry_ts_brin:
    // the new table's, from now on.
    await q.query(`ALTER INDEX telemetry_ts_brin RENAME TO telemetry_v1_ts_brin`);
    await q.query(`CREATE TABLE telemetry_points (${POINT_COLUMNS}) PARTITION BY RANGE (ts)`);
    await q.query(`CREATE TABLE telemetry_points_default PARTITION OF telemetry_points DEFAULT`);
    await q.query(
      `CREATE INDEX telemetry_ts_brin ON telemetry_points USING brin (ts) WITH (autosummarize = on)`,
    );
    await q.query(ENSURE_PARTITIONS_V2);
    await q.query(APPLY_RETENTION_V3);
    await q.query(`CREATE OR REPLACE ${REFRESH_ROLLUP_V2}`);
    await q.query(`SELECT telemetry_ensure_partitions(7, 7)`);
    await q.query(TELEMETRY_VIEW);
  }

  async down(q: QueryRunner): Promise<void> {
    const partitioned = await isPartitionedStore(q);
    await q.query(`DROP VIEW telemetry`);
    // The points stored since go back into the old table (a day without a partition there
    // lands in its default partition).
    await q.query(`
      INSERT INTO telemetry_v1 (tenant_id, device_id, metric, ts, value, unit, quality, received_at)
      SELECT s.tenant_id, s.device_id, s.metric, p.ts, p.value, s.unit, p.quality, p.received_at
      FROM telemetry_points p JOIN telemetry_series s ON s.series_id = p.series_id
      ON CONFLICT DO NOTHING`);
    if (!partitioned) {
      await q.query(`DROP VIEW telemetry_5m`);
      await q.query(`DROP MATERIALIZED VIEW telemetry_5m_series`);
      await q.query(`DROP TABLE telemetry_points`);
      await q.query(`ALTER MATERIALIZED VIEW telemetry_5m_v1 RENAME TO telemetry_5m`);
    } else {
      await q.query(`DROP TABLE telemetry_points`);
      await q.query(`ALTER INDEX telemetry_v1_ts_brin RENAME TO telemetry_ts_brin`);
      await q.query(ENSURE_PARTITIONS_V1);
      await q.query(APPLY_RETENTION_V2);
      await q.query(`CREATE OR REPLACE ${REFRESH_ROLLUP_V1}`);
    }
    await q.query(`ALTER TABLE telemetry_v1 RENAME TO telemetry`);
    await q.query(`DROP TABLE telemetry_series`);
  }
}
