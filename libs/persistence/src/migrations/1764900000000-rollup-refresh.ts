import type { MigrationInterface, QueryRunner } from 'typeorm';
import { isPartitionedStore } from './plain-postgres';
import { ROLLUP_LOCK_KEY } from '@iot/contracts';

/**
 * `telemetry_5m_refresh`, after CREATE or CREATE OR REPLACE (migration SeriesKey1765000000000
 * replaces it, and restores it on the way down).
 */
export const REFRESH_ROLLUP_V1 = `
      FUNCTION telemetry_5m_refresh(max_buckets int) RETURNS int
      -- As the owner of the indexes: only their owner may summarize them. The planner
      -- misjudges a bucket of the newest rows, past the statistics or in a partition never
      -- analyzed: it would scan the whole day, sort millions of rows on disk to group them,
      -- or start parallel workers for every empty bucket. A bucket is read by the BRIN index
      -- and grouped in memory (a few thousand series).
      LANGUAGE plpgsql SECURITY DEFINER
      SET search_path = public SET enable_seqscan = off SET enable_sort = off
      SET max_parallel_workers_per_gather = 0 AS $$
      DECLARE b timestamptz; done int := 0; saved_lock_timeout text;
        raw_keep interval := (SELECT value::interval FROM telemetry_settings WHERE key = 'raw_retention');
      BEGIN
        -- Buckets a batch is writing into right now are skipped: they come next time.
        FOR b IN
          DELETE FROM telemetry_5m_dirty WHERE bucket IN (
            SELECT bucket FROM telemetry_5m_dirty ORDER BY bucket LIMIT max_buckets FOR UPDATE SKIP LOCKED)
          RETURNING bucket
        LOOP
          IF done = 0 THEN
            -- Pages written since the last summary get one, so that each bucket below reads
            -- only its own page ranges, not every page autovacuum has not summarized yet.
            -- Autovacuum takes the same lock on a partition (and summarizes it too): waiting
            -- past deadlock_timeout would cancel it, every 30 s; after 100 ms this time goes
            -- without, and reads the ranges left unsummarized.
            BEGIN
              saved_lock_timeout := current_setting('lock_timeout');
              PERFORM set_config('lock_timeout', '100ms', true);
              PERFORM brin_summarize_new_values(i.inhrelid)
              FROM pg_inherits i WHERE i.inhparent = 'telemetry_ts_brin'::regclass;
              PERFORM set_config('lock_timeout', saved_lock_timeout, true);
            EXCEPTION WHEN lock_not_available THEN
              NULL;
            END;
          END IF;
          done := done + 1;
          -- Past the raw window retention may have deleted some of a bucket's rows: its
          -- rollup, computed while they were all there, stays as it is.
          CONTINUE WHEN b < now() - raw_keep;
          INSERT INTO telemetry_5m AS r (tenant_id, device_id, metric, bucket, count, sum, min, max)
            SELECT tenant_id, device_id, metric, b, count(*), sum(value), min(value), max(value)
            FROM telemetry WHERE ts >= b AND ts < b + interval '5 minutes'
            GROUP BY 1, 2, 3
          ON CONFLICT (tenant_id, device_id, metric, bucket) DO UPDATE SET
            count = EXCLUDED.count, sum = EXCLUDED.sum, min = EXCLUDED.min, max = EXCLUDED.max;
        END LOOP;
        RETURN done;
      END $$`;

/**
 * On plain PostgreSQL the 5-minute rollup is materialized as TimescaleDB's continuous
 * aggregate is: each bucket once it has closed, from its rows, instead of by the writer in
 * every batch. A batch of a few hundred messages from as many devices updated about one
 * rollup row per point, which cost PostgreSQL as much as the rows themselves (67-94 against
 * 31-56 µs per message; docs/performance.md).
 *
 * - `telemetry_5m_state.materialized_upto`: buckets before it are materialized (or queued);
 *   `telemetry_5m_advance()` moves it to the last bucket that closed a minute ago and queues
 *   the buckets it passed.
 * - `telemetry_5m_dirty`: buckets to compute again. A writer that stores a row in a bucket
 *   before `materialized_upto` (a late reading) queues its bucket in the same transaction.
 * - `telemetry_5m_refresh(n)` computes up to `n` queued buckets from their rows and returns
 *   how many it took. A bucket past the raw window (7 days), whose rows retention may have
 *   deleted in part, is not computed again: a reading that late leaves the rollup as it was,
 *   as TimescaleDB's policy (start offset 1 day) does.
 *
 * Why no row is missed: a batch holds the advisory lock ROLLUP_LOCK_KEY shared from before
 * it reads `materialized_upto` until it commits, and `advance` takes it exclusively: it waits
 * for every batch that read the old value to commit, and a batch that starts later reads the
 * new value (the lock manager queues it behind `advance`, which no stream of batches can
 * starve, as it could a FOR UPDATE behind FOR SHARE row locks). A batch queues a late bucket
 * with a row lock (ON CONFLICT DO UPDATE), so `refresh` (FOR UPDATE SKIP LOCKED) leaves a
 * bucket alone while a batch writing into it is open, and computes it after that batch has
 * committed. `refresh` replaces a bucket's rollup rows with counts from the table, so
 * computing a bucket twice changes nothing.
 *
 * The rollup thus trails the rows by the bucket, a minute, and the writer's refresh interval
 * (30 s): 6-7 minutes at most, as TimescaleDB's policy here (end offset 5 minutes, every
 * minute). A BRIN index on `ts` lets a bucket's rows be read without scanning its day.
 */
export class RollupRefresh1764900000000 implements MigrationInterface {
  name = 'RollupRefresh1764900000000';

  async up(q: QueryRunner): Promise<void> {
    if (!(await isPartitionedStore(q))) return;
    await q.query(`CREATE INDEX telemetry_ts_brin ON telemetry USING brin (ts) WITH (autosummarize = on)`);
    await q.query(`
      CREATE TABLE telemetry_5m_state (
        id                boolean     PRIMARY KEY DEFAULT true CHECK (id),
        materialized_upto timestamptz NOT NULL
      )`);
    // Until now the writer kept the rollup exact batch by batch: every bucket before the
    // current one is complete, and the current one is computed again when it closes.
    await q.query(`
      INSERT INTO telemetry_5m_state (materialized_upto)
      VALUES (date_bin('5 minutes', now(), timestamptz '2000-01-01'))`);
    await q.query(`CREATE TABLE telemetry_5m_dirty (bucket timestamptz PRIMARY KEY)`);
    await q.query(`
      CREATE FUNCTION telemetry_5m_advance() RETURNS int
      LANGUAGE plpgsql AS $$
      DECLARE upto timestamptz; target timestamptz; queued int;
      BEGIN
        -- Waits for the batches that may have read the old value to commit.
        PERFORM pg_advisory_xact_lock(${ROLLUP_LOCK_KEY});
        SELECT materialized_upto INTO upto FROM telemetry_5m_state FOR UPDATE;
        target := date_bin('5 minutes', now() - interval '1 minute', timestamptz '2000-01-01');
        IF target <= upto THEN RETURN 0; END IF;
        INSERT INTO telemetry_5m_dirty (bucket)
          SELECT generate_series(upto, target - interval '5 minutes', interval '5 minutes')
          ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS queued = ROW_COUNT;
        UPDATE telemetry_5m_state SET materialized_upto = target;
        RETURN queued;
      END $$`);
    await q.query(`CREATE ${REFRESH_ROLLUP_V1}`);
  }

  async down(q: QueryRunner): Promise<void> {
    if (!(await isPartitionedStore(q))) return;
    await q.query(`DROP FUNCTION IF EXISTS telemetry_5m_refresh(int)`);
    await q.query(`DROP FUNCTION IF EXISTS telemetry_5m_advance()`);
    await q.query(`DROP TABLE IF EXISTS telemetry_5m_dirty`);
    await q.query(`DROP TABLE IF EXISTS telemetry_5m_state`);
    await q.query(`DROP INDEX IF EXISTS telemetry_ts_brin`);
  }
}
