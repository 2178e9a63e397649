import type { MigrationInterface, QueryRunner } from 'typeorm';
import { isPartitionedStore } from './plain-postgres';
import { APPLY_RETENTION_V1 } from './1763900000000-telemetry-store';

/**
 * On plain PostgreSQL, retention also deletes the rows of the default partition past the raw
 * window. It used to drop only whole daily partitions, and rows that landed in the default
 * one (backfills older than the partitions, clocks far off, days whose partition could not be
 * created because the default already held rows of them) stayed there for ever, while their
 * rollup rows were deleted after a year. TimescaleDB's retention policy drops old chunks
 * whatever their rows, so nothing changes there.
 */
/** Version 1, and the rows of the default partition past the raw window deleted too. */
const ROLLUP_DELETE = 'DELETE FROM telemetry_5m';
export const APPLY_RETENTION_V2 = APPLY_RETENTION_V1.replace(
  ROLLUP_DELETE,
  `DELETE FROM telemetry_default WHERE ts < now() - raw_keep;\n        ${ROLLUP_DELETE}`,
);

export class DefaultPartitionRetention1764800000000 implements MigrationInterface {
  name = 'DefaultPartitionRetention1764800000000';

  async up(q: QueryRunner): Promise<void> {
    if (!(await isPartitionedStore(q))) return;
    await q.query(APPLY_RETENTION_V2);
  }

  async down(q: QueryRunner): Promise<void> {
    if (await isPartitionedStore(q)) await q.query(APPLY_RETENTION_V1);
  }
}
