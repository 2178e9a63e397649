import { DataSource } from 'typeorm';
import { TelemetryStore1763900000000 } from './migrations/1763900000000-telemetry-store';
import { Auth1764000000000 } from './migrations/1764000000000-auth';
import { Devices1764100000000 } from './migrations/1764100000000-devices';
import { RollupFillfactor1764700000000 } from './migrations/1764700000000-rollup-fillfactor';
import { DefaultPartitionRetention1764800000000 } from './migrations/1764800000000-default-partition-retention';
import { RollupRefresh1764900000000 } from './migrations/1764900000000-rollup-refresh';
import { SeriesKey1765000000000 } from './migrations/1765000000000-series-key';

/** Every migration, in order. New ones are appended, never edited once released. */
export const MIGRATIONS = [
  TelemetryStore1763900000000,
  Auth1764000000000,
  Devices1764100000000,
  RollupFillfactor1764700000000,
  DefaultPartitionRetention1764800000000,
  RollupRefresh1764900000000,
  SeriesKey1765000000000,
];

/** The TypeORM data source: schema changes come only from migrations, never from entities. */
export function createDataSource(url: string): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    synchronize: false,
    migrationsRun: false,
    migrations: MIGRATIONS,
    migrationsTableName: 'schema_migrations',
    logging: ['error'],
  });
}

/** Applies pending migrations; returns the names of those it ran. */
export async function runMigrations(url: string): Promise<string[]> {
  const ds = createDataSource(url);
  await ds.initialize();
  try {
    const ran = await ds.runMigrations({ transaction: 'each' });
    return ran.map((m) => m.name);
  } finally {
    await ds.destroy();
  }
}

/** Reverts the last migration applied (its `down`), in a transaction of its own. */
export async function revertLastMigration(url: string): Promise<void> {
  const ds = createDataSource(url);
  await ds.initialize();
  try {
    await ds.undoLastMigration({ transaction: 'each' });
  } finally {
    await ds.destroy();
  }
}
