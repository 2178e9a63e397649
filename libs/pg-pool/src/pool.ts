import { Pool } from 'pg';

export interface PoolOptions {
  /** Connections at most. */
  max: number;
  /** The name the connections carry in pg_stat_activity, unless the URL gives an application_name. */
  name: string;
}

/**
 * A service's connection pool, its connections kept open through lulls.
 *
 * pg-pool closes a client idle for 10 s unless told otherwise, so after every quiet spell (a
 * small fleet reporting every minute, a night, a console nobody used for a while) the next
 * queries waited for new connections, and PostgreSQL forked backends with cold catalog caches:
 * at 5,000 msg/s after 20 s at rest, the writer's first 5 s had a p99 from the bridge to the
 * commit of 176-231 ms against 132-173 with its connections kept (docs/performance-history.md,
 * 2026-12-05 12:00). TCP keepalive finds a connection a network dropped while it idled; one the
 * server closes is heard by the pool, which drops it. An idle client losing its server (a
 * database restart) emits `error` on the pool: `onIdleError` hears it, and the process goes on.
 * A query waits at most 5 s for a free connection (or to connect), then fails.
 */
export function openPool(url: string, options: PoolOptions, onIdleError: (e: Error) => void): Pool {
  const pool = new Pool({
    connectionString: url,
    max: options.max,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 0,
    keepAlive: true,
    keepAliveInitialDelayMillis: 60_000,
    application_name: options.name,
  });
  pool.on('error', onIdleError);
  return pool;
}
