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
 * answers. `engine` asks for one: `postgres`, plain PostgreSQL from the local binaries
 * wherever the tests run (what the plain store's own specs need); `timescaledb`, the
 * container, failing where no Docker engine answers.
 */
export async function startPostgres(
  opts: PostgresOptions & { engine?: 'postgres' | 'timescaledb' } = {},
): Promise<PostgresHandle> {
  if (opts.engine === 'timescaledb' && (opts.dir || (await serverMode()) === 'local'))
    throw new Error(
      'TimescaleDB comes as a container image here (no Debian package): it needs a Docker engine and IOT_TEST_SERVERS other than local',
    );
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
