import { extname, join } from 'node:path';
import { queryOnce } from './postgres';
import { freePort, removeDir, spawnManaged, tempDir, waitFor } from './process';

/** PostgreSQL's version and the TimescaleDB it has, in one line. */
export const TIMESCALEDB_VERSION = `SELECT version() || ', TimescaleDB ' || default_version AS v
  FROM pg_available_extensions WHERE name = 'timescaledb'`;

export interface EmbeddedTimescaleDb {
  url: string;
  version: string;
  stop(): Promise<void>;
}

/**
 * TimescaleDB where no Docker engine answers: PGlite with the TimescaleDB extension in a
 * Node process of its own (embedded-timescaledb-main.ts, which says what it can and cannot
 * do), on a free loopback port. Its log is kept in a temporary directory until it stops.
 */
export async function startEmbeddedTimescaleDb(): Promise<EmbeddedTimescaleDb> {
  const dir = tempDir('timescaledb');
  const port = await freePort();
  const proc = spawnManaged({
    name: 'embedded TimescaleDB',
    cmd: process.execPath,
    // From the sources (Jest), Node 24 runs the TypeScript with its types stripped; from dist,
    // the built JavaScript.
    args: [
      '--disable-warning=ExperimentalWarning',
      '--disable-warning=MODULE_TYPELESS_PACKAGE_JSON',
      join(__dirname, `embedded-timescaledb-main${extname(__filename)}`),
      String(port),
    ],
    logFile: join(dir, 'timescaledb.log'),
  });
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  try {
    let version = '';
    await waitFor(
      'the embedded TimescaleDB to answer',
      async () => {
        const [row] = await queryOnce<{ v: string }>(url, TIMESCALEDB_VERSION);
        version = row?.v ?? 'unknown';
        return true;
      },
      60_000,
      proc.logFile,
      proc,
    );
    return {
      url,
      version,
      async stop() {
        await proc.stop();
        removeDir(dir);
      },
    };
  } catch (e) {
    await proc.stop();
    throw e;
  }
}
