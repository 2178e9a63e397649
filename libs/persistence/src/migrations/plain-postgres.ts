import type { QueryRunner } from 'typeorm';

/**
 * Whether the telemetry store is the plain PostgreSQL one (daily range partitions with a
 * default partition) rather than TimescaleDB's: the migrations that change only the former
 * ask this first.
 */
export async function isPartitionedStore(q: QueryRunner): Promise<boolean> {
  const [{ found }] = await q.query(`SELECT to_regclass('telemetry_default') IS NOT NULL AS found`);
  return found;
}
