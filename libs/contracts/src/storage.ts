/**
 * The PostgreSQL advisory lock between the writer's batches (held shared from before a batch
 * reads where the rollup is materialized until it commits) and `telemetry_5m_advance`, which
 * takes it exclusively: shared by the schema (libs/persistence, migration
 * RollupRefresh1764900000000) and the writer (libs/tsdb-writer-data-access).
 */
export const ROLLUP_LOCK_KEY = 7_649_000_001;
