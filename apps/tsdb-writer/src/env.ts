import { num, str } from '@iot/config';

export const writerEnv = {
  DATABASE_URL: str({ desc: 'PostgreSQL or TimescaleDB URL, e.g. postgres://iot:secret@db:5432/iot' }),
  DB_POOL_SIZE: num({ default: 4, desc: 'Connections to the database' }),
  PARTITION_MAINTENANCE_MS: num({
    default: 3_600_000,
    desc: 'How often partitions are created ahead and dropped behind (ms)',
  }),
  ROLLUP_REFRESH_MS: num({
    default: 30_000,
    desc: 'How often the 5-minute rollup of closed and late buckets is computed (ms; plain PostgreSQL)',
  }),
};
