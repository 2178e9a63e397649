import { DEVICE_REGISTRY_BUCKET } from '@iot/contracts';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
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
