import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import {
  chownTo,
  isRoot,
  portOr,
  removeDir,
  spawnManaged,
  tempDir,
  userIds,
  waitFor,
  type ManagedProcess,
} from './process';

export interface PostgresHandle {
  /** postgres://postgres@127.0.0.1:<port>/iot */
  url: string;
  port: number;
  dir: string;
  process: ManagedProcess;
  /** Stops the server, keeping its data (for outage tests). */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  stop(): Promise<void>;
}

/** One query on a connection of its own, closed afterwards (test helpers, not hot paths). */
export async function queryOnce<T = Record<string, unknown>>(
  url: string,
  sql: string,
  params?: unknown[],
): Promise<T[]> {
  const c = new Client({ connectionString: url });
  try {
    await c.connect();
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** The directory of PostgreSQL's server binaries: PG_BIN, pg_config, or Debian's layout. */
export function postgresBinDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    if (existsSync(join(dir, 'initdb'))) return dir;
  } catch {
    /* fall through */
  }
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(base, v, 'bin', 'initdb'))) return join(base, v, 'bin');
  throw new Error(
    'PostgreSQL server binaries not found: install the Debian package postgresql (./platform test does)',
  );
}

/**
 * Starts a throwaway PostgreSQL: initdb in a temporary directory, trust auth on loopback,
 * fsync off unless `durable` (test data need not survive a power cut), database `iot`.
 */
export interface PostgresOptions {
  /** A lasting directory (for `./platform up`): kept on stop, its data reused on the next start. */
  dir?: string;
  /** Preferred port; a free one is taken when it is busy. */
  port?: number;
  /** fsync and full-page writes on, as in production (benchmarks); off by default. */
  durable?: boolean;
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresHandle> {
  const bin = postgresBinDir();
  const dir = opts.dir ?? tempDir('pg');
  mkdirSync(dir, { recursive: true });
  const user = isRoot() ? 'postgres' : undefined;
  if (user) chownTo(dir, user);
  const data = join(dir, 'data');
  if (!existsSync(join(data, 'PG_VERSION'))) {
    const initArgs = ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'];
    execFileSync(join(bin, 'initdb'), initArgs, { stdio: 'ignore', ...(user ? userIds(user) : {}) });
  }
  const port = await portOr(opts.port);
  const proc = spawnManaged({
    name: 'postgres',
    cmd: join(bin, 'postgres'),
    args: [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `fsync=${opts.durable ? 'on' : 'off'}`,
      '-c',
      `full_page_writes=${opts.durable ? 'on' : 'off'}`,
      '-c',
      'max_connections=200',
    ],
    logFile: join(dir, 'postgres.log'),
    user,
    // SIGTERM is PostgreSQL's smart shutdown, which waits for every client to leave; SIGINT
    // (fast) disconnects them and stops at once, as a stop or an outage does.
    stopSignal: 'SIGINT',
  });
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const ready = async () => (await queryOnce(adminUrl, 'select 1'), true);

  await waitFor('PostgreSQL to accept connections', ready, 30_000, proc.logFile, proc);
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  const exists = await admin.query(`SELECT 1 FROM pg_database WHERE datname = 'iot'`);
  if (exists.rowCount === 0) await admin.query('CREATE DATABASE iot');
  await admin.end();
  const url = `postgres://postgres@127.0.0.1:${port}/iot`;
  return {
    url,
    port,
    dir,
    process: proc,
    stopServer: () => proc.stop(),
    async startServer() {
      await proc.restart();
      await waitFor('PostgreSQL to accept connections again', ready, 30_000, proc.logFile);
    },
    query: (sql, params) => queryOnce(url, sql, params),
    async stop() {
      await proc.stop();
      if (!opts.dir) removeDir(dir);
    },
  };
}
