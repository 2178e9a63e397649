import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The columns every reader relies on; the same on TimescaleDB and on plain PostgreSQL. */
const TELEMETRY_COLUMNS = `
  tenant_id   text             NOT NULL,
  device_id   text             NOT NULL,
  metric      text             NOT NULL,
  ts          timestamptz      NOT NULL,  -- event time from the device
  value       double precision NOT NULL,
  unit        text             NOT NULL,  -- canonical UCUM unit
  quality     text             NOT NULL,  -- good | clamped | out-of-range | skewed
  received_at timestamptz      NOT NULL,  -- ingest time at the bridge
  PRIMARY KEY (tenant_id, device_id, metric, ts)`;

/**
 * Daily partitions named telemetry_pYYYYMMDD, from `days_behind` ago to `days_ahead` ahead
 * (replaced by migration SeriesKey1765000000000, which restores it on the way down).
 */
export const ENSURE_PARTITIONS_V1 = `
      CREATE OR REPLACE FUNCTION telemetry_ensure_partitions(days_behind int, days_ahead int) RETURNS int
      LANGUAGE plpgsql AS $$
      DECLARE d date; created int := 0; name text;
      BEGIN
        FOR d IN SELECT generate_series(current_date - days_behind, current_date + days_ahead, interval '1 day')::date LOOP
          name := 'telemetry_p' || to_char(d, 'YYYYMMDD');
          IF to_regclass(name) IS NULL THEN
            BEGIN
              EXECUTE format('CREATE TABLE %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)', name, d, d + 1);
              created := created + 1;
            EXCEPTION WHEN check_violation THEN
              -- Rows for that day already sit in the default partition: leave them there.
              RAISE NOTICE 'partition % skipped: the default partition holds rows of that day', name;
            END;
          END IF;
        END LOOP;
        RETURN created;
      END $$`;

/**
 * Retention on plain PostgreSQL as this migration made it: drop whole daily partitions older
 * than the window (cheap, unlike DELETE) and the rollup rows past theirs. Migration
 * DefaultPartitionRetention1764800000000 replaces it and restores it on the way down.
 */
export const APPLY_RETENTION_V1 = `
      CREATE OR REPLACE FUNCTION telemetry_apply_retention() RETURNS int
      LANGUAGE plpgsql AS $$
      DECLARE r record; dropped int := 0;
        raw_keep interval := (SELECT value::interval FROM telemetry_settings WHERE key = 'raw_retention');
        rollup_keep interval := (SELECT value::interval FROM telemetry_settings WHERE key = 'rollup_retention');
      BEGIN
        FOR r IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'telemetry'::regclass AND c.relname ~ '^telemetry_p[0-9]{8}$'
                   AND to_date(substr(c.relname, 12), 'YYYYMMDD') + 1 <= (now() - raw_keep)::date LOOP
          EXECUTE format('DROP TABLE %I', r.relname);
          dropped := dropped + 1;
        END LOOP;
        DELETE FROM telemetry_5m WHERE bucket < now() - rollup_keep;
        RETURN dropped;
      END $$`;

/**
 * The telemetry store: `telemetry` (raw points) and `telemetry_5m` (5-minute rollup).
 * On TimescaleDB: a hypertable with compression, a continuous aggregate and retention.
 * On plain PostgreSQL: daily range partitions created ahead and dropped behind by
 * functions the writer calls, and a rollup table the writer keeps current in the same
 * transaction as the rows. Same names and columns either way, so readers do not care.
 */
export class TelemetryStore1763900000000 implements MigrationInterface {
  name = 'TelemetryStore1763900000000';

  async up(q: QueryRunner): Promise<void> {
    const [{ available }] = await q.query(
      `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available`,
    );
    // Settings readers and the writer look up: retention windows, and which engine stores the data.
    await q.query(`
      CREATE TABLE IF NOT EXISTS telemetry_settings (
        key   text PRIMARY KEY,
        value text NOT NULL
      )`);
    await q.query(
      `
      INSERT INTO telemetry_settings (key, value) VALUES
        ('raw_retention', '7 days'), ('rollup_retention', '1 year'), ('engine', $1)
      ON CONFLICT (key) DO NOTHING`,
      [available ? 'timescaledb' : 'postgres-partitions'],
    );

    if (available) {
      await q.query(`CREATE EXTENSION IF NOT EXISTS timescaledb`);
      await q.query(`
        CREATE TABLE telemetry (${TELEMETRY_COLUMNS})`);
      await q.query(`SELECT create_hypertable('telemetry', 'ts', chunk_time_interval => interval '1 day')`);
      await q.query(
        `ALTER TABLE telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'tenant_id, device_id, metric')`,
      );
      await q.query(`SELECT add_compression_policy('telemetry', interval '2 days')`);
      await q.query(`SELECT add_retention_policy('telemetry', interval '7 days')`);
      await q.query(`
        CREATE MATERIALIZED VIEW telemetry_5m WITH (timescaledb.continuous) AS
        SELECT tenant_id, device_id, metric, time_bucket(interval '5 minutes', ts) AS bucket,
               count(*)::bigint AS count, sum(value) AS sum, min(value) AS min, max(value) AS max
        FROM telemetry GROUP BY tenant_id, device_id, metric, bucket WITH NO DATA`);
      await q.query(`SELECT add_continuous_aggregate_policy('telemetry_5m',
        start_offset => interval '1 day', end_offset => interval '5 minutes', schedule_interval => interval '1 minute')`);
      await q.query(`SELECT add_retention_policy('telemetry_5m', interval '1 year')`);
      return;
    }

    await q.query(`
      CREATE TABLE telemetry (${TELEMETRY_COLUMNS}) PARTITION BY RANGE (ts)`);
    // Catches rows outside every daily partition (old backfills, far-future clocks) so no write fails.
    await q.query(`CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT`);
    await q.query(`
      CREATE TABLE telemetry_5m (
        tenant_id text             NOT NULL,
        device_id text             NOT NULL,
        metric    text             NOT NULL,
        bucket    timestamptz      NOT NULL,
        count     bigint           NOT NULL,
        sum       double precision NOT NULL,
        min       double precision NOT NULL,
        max       double precision NOT NULL,
        PRIMARY KEY (tenant_id, device_id, metric, bucket)
      )`);
    await q.query(ENSURE_PARTITIONS_V1);
    await q.query(APPLY_RETENTION_V1);
    await q.query(`SELECT telemetry_ensure_partitions(7, 7)`);
  }

  async down(q: QueryRunner): Promise<void> {
    const [{ engine }] = await q.query(`SELECT value AS engine FROM telemetry_settings WHERE key = 'engine'`);
    if (engine === 'timescaledb') await q.query(`DROP MATERIALIZED VIEW IF EXISTS telemetry_5m`);
    else {
      await q.query(`DROP TABLE IF EXISTS telemetry_5m`);
      await q.query(`DROP FUNCTION IF EXISTS telemetry_ensure_partitions(int, int)`);
      await q.query(`DROP FUNCTION IF EXISTS telemetry_apply_retention()`);
    }
    await q.query(`DROP TABLE IF EXISTS telemetry`);
    await q.query(`DROP TABLE IF EXISTS telemetry_settings`);
  }
}
