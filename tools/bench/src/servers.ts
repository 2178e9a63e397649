import { DEVICE_REGISTRY_BUCKET } from '@iot/contracts';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import mqtt from 'mqtt';
import { runMigrations } from '@iot/persistence';
import {
  startMosquitto,
  startNats,
  startPostgres,
  type MosquittoHandle,
  type NatsHandle,
  type PostgresHandle,
  startTogether,
} from '@iot/testing';
import { BENCH_TENANT } from './load';

export interface BenchServers {
  nats: NatsHandle;
  pg: PostgresHandle;
  mqtt: MosquittoHandle;
  nc: NatsConnection;
  stop(): Promise<void>;
}

/**
 * The servers of a benchmark, started as the tests start them but with PostgreSQL durable
 * (fsync on): the writer and `psql \copy` are measured against the same durable table.
 */
export async function startServers(devices: string[]): Promise<BenchServers> {
  const [nats, pg, mqtt] = await startTogether(
    startNats(),
    startPostgres({ durable: true }),
    startMosquitto(),
  );
  await runMigrations(pg.url);
  await pg.query('SELECT telemetry_ensure_partitions(31, 2)');
  // As the services connect (libs/messaging): without an Error built per request.
  const nc = await connect({ servers: nats.urls, name: 'bench', noAsyncTraces: true });
  await registerDevices(nc, devices);
  return {
    nats,
    pg,
    mqtt,
    nc,
    stop: async () => {
      await nc.close();
      await Promise.all([nats.stop(), pg.stop(), mqtt.stop()]);
    },
  };
}

export async function registerDevices(
  nc: NatsConnection,
  devices: string[],
  model = 'generic',
): Promise<void> {
  const kv = await new Kvm(nc).create(DEVICE_REGISTRY_BUCKET, { history: 1 });
  await Promise.all(
    devices.map((device) =>
      kv.put(device, JSON.stringify({ device, tenant: BENCH_TENANT, model, state: 'active' })),
    ),
  );
}

/**
 * The bench reads each server's CPU time from /proc and chaos signals the servers (SIGSTOP,
 * SIGKILL): both need them as local processes, also where a Docker engine answers, where
 * libs/testing would otherwise start containers (IOT_TEST_SERVERS=auto). Set explicitly,
 * IOT_TEST_SERVERS wins.
 */
export function useLocalServers(): void {
  process.env.IOT_TEST_SERVERS ??= 'local';
}

/** The versions of the servers a run measured, as each says of itself; absent where one did not say. */
export interface ServerVersions {
  nats_server?: string;
  postgres?: string;
  timescaledb?: string;
  mosquitto?: string;
}

/**
 * Asks each server its version: nats-server in its INFO, PostgreSQL `server_version` (and
 * the TimescaleDB extension's, where installed), mosquitto the retained
 * `$SYS/broker/version`. A run's figures depend on them (nats-server 2.9 and 2.10 differ,
 * docs/adr/0009), and a run on a GitHub runner or in containers has other versions than here.
 */
export async function serverVersions(s: BenchServers): Promise<ServerVersions> {
  const [postgres, mosquitto] = await Promise.all([
    s.pg
      .query<{ version: string; timescaledb: string | null }>(
        `SELECT split_part(current_setting('server_version'), ' ', 1) AS version,
                (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS timescaledb`,
      )
      .then(
        ([row]) => row,
        () => undefined,
      ),
    mosquittoVersion(s.mqtt.url),
  ]);
  return {
    ...(s.nc.info?.version ? { nats_server: s.nc.info.version } : {}),
    ...(postgres?.version ? { postgres: postgres.version } : {}),
    ...(postgres?.timescaledb ? { timescaledb: postgres.timescaledb } : {}),
    ...(mosquitto ? { mosquitto } : {}),
  };
}

async function mosquittoVersion(url: string, timeoutMs = 2_000): Promise<string | undefined> {
  const client = mqtt.connect(url, { clientId: `bench-version-${process.pid}`, reconnectPeriod: 0 });
  try {
    return await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      client.on('error', () => (clearTimeout(timer), resolve(undefined)));
      client.on('message', (_topic, payload) => {
        clearTimeout(timer);
        resolve(payload.toString().replace(/^mosquitto version /, ''));
      });
      client.on('connect', () => client.subscribe('$SYS/broker/version'));
    });
  } finally {
    await client.endAsync(true).catch(() => undefined);
  }
}
