import {
  containerProcess,
  serverMode,
  startMosquittoContainer,
  startNatsContainer,
  startPostgresContainer,
} from './containers';
import {
  startMosquitto as startLocalMosquitto,
  type MosquittoHandle,
  type MosquittoOptions,
} from './mosquitto';
import { startNats as startLocalNats, type NatsHandle, type NatsOptions } from './nats';
import {
  queryOnce,
  startPostgres as startLocalPostgres,
  type PostgresHandle,
  type PostgresOptions,
} from './postgres';
import { waitFor } from './process';
import { startEmbeddedTimescaleDb, TIMESCALEDB_VERSION } from './embedded-timescaledb';

/** nats-server: local binary, or a container where a Docker engine answers (single node, no lasting dir). */
export async function startNats(opts: NatsOptions = {}): Promise<NatsHandle> {
  if ((opts.nodes ?? 1) > 1 || opts.dir || (await serverMode()) === 'local') return startLocalNats(opts);
  const { c, url, monitorUrl } = await startNatsContainer(opts.goMaxProcs);
  const process = containerProcess('nats', c);
  return {
    url,
    urls: [url],
    monitorUrl,
    dir: '',
    nodes: [{ name: 'n1', url, monitorUrl, process }],
    waitHealthy: (timeoutMs = 30_000) =>
      waitFor('nats container', async () => (await fetch(`${monitorUrl}/healthz`)).ok, timeoutMs),
    stop: async () => void (await c.stop()),
  };
}

/**
 * PostgreSQL: initdb in a temporary directory, or a TimescaleDB container where an engine
 * answers. `engine: 'postgres'` asks for plain PostgreSQL from the local binaries wherever
 * the tests run (what the plain store's own specs need); TimescaleDB wherever they run is
 * `startTimescaleDb`.
 */
export async function startPostgres(
  opts: PostgresOptions & { engine?: 'postgres' } = {},
): Promise<PostgresHandle> {
  if (opts.engine === 'postgres' || opts.dir || (await serverMode()) === 'local')
    return startLocalPostgres(opts);
  const { c, url, port } = await startPostgresContainer();
  const process = containerProcess('postgres', c);
  return {
    url,
    port,
    dir: '',
    process,
    stopServer: () => process.stop(),
    startServer: () => process.restart(),
    query: (sql, params) => queryOnce(url, sql, params),
    stop: async () => void (await c.stop()),
  };
}

export interface TimescaleDbHandle {
  url: string;
  /** Where it runs: the TimescaleDB image, or PGlite with TimescaleDB in a Node process. */
  kind: 'container' | 'embedded';
  /** PostgreSQL's and TimescaleDB's versions. */
  version: string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  stop(): Promise<void>;
}

/**
 * TimescaleDB, the store of docker-compose and k8s: the container image where a Docker
 * engine answers, else (no Debian package has it) PGlite with TimescaleDB in a Node process
 * of its own (embedded-timescaledb.ts: one session that connections take in turns, no
 * background jobs).
 */
export async function startTimescaleDb(): Promise<TimescaleDbHandle> {
  if ((await serverMode()) === 'containers') {
    const { c, url } = await startPostgresContainer();
    const [row] = await queryOnce<{ v: string }>(url, TIMESCALEDB_VERSION);
    return {
      url,
      kind: 'container',
      version: row?.v ?? 'unknown',
      query: (sql, params) => queryOnce(url, sql, params),
      stop: async () => void (await c.stop()),
    };
  }
  const db = await startEmbeddedTimescaleDb();
  return { ...db, kind: 'embedded', query: (sql, params) => queryOnce(db.url, sql, params) };
}

/** mosquitto: local binary (always with TLS), or a container where an engine answers. */
export async function startMosquitto(opts: MosquittoOptions = {}): Promise<MosquittoHandle> {
  if (opts.tls || opts.acl || opts.dir || (await serverMode()) === 'local') return startLocalMosquitto(opts);
  const { c, url, port } = await startMosquittoContainer();
  const process = containerProcess('mosquitto', c);
  return {
    url,
    port,
    dir: '',
    process,
    restart: () => process.restart(),
    reload: () => process.signal('SIGHUP'),
    stop: async () => void (await c.stop()),
  };
}

/**
 * Starts servers at once, as `Promise.all` would, but when one fails to start, stops those
 * that did before rethrowing: no server process or temporary directory outlives a failed
 * start (a chaos run once left PostgreSQL's and mosquitto's behind when nats-server failed).
 */
export async function startTogether<T extends Array<{ stop(): Promise<unknown> }>>(
  ...starts: { [K in keyof T]: Promise<T[K]> }
): Promise<T> {
  const settled = await Promise.allSettled(starts);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) return settled.map((r) => (r as PromiseFulfilledResult<T[number]>).value) as T;
  await Promise.all(
    settled.map((r) => (r.status === 'fulfilled' ? r.value.stop().catch(() => undefined) : undefined)),
  );
  throw failed.reason;
}
