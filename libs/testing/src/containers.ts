import { execFile } from 'node:child_process';
import type { StartedTestContainer } from 'testcontainers';
import type { ManagedProcess } from './process';

let engine: Promise<boolean> | undefined;

/**
 * Whether a Docker engine answers. A `docker` client binary alone (as on machines without
 * an engine) is not enough: `docker version` must reach the server.
 */
export function dockerEngineAvailable(): Promise<boolean> {
  engine ??= new Promise((resolve) => {
    execFile('docker', ['version', '--format', '{{.Server.Version}}'], { timeout: 5_000 }, (err, stdout) =>
      resolve(!err && stdout.trim().length > 0),
    );
  });
  return engine;
}

export type ServerMode = 'local' | 'containers';

/**
 * IOT_TEST_SERVERS=local|containers|auto (default auto): containers where an engine answers,
 * local binaries otherwise. Three-node clusters and TLS always use local binaries, whose
 * processes the fault-injection tests signal directly.
 */
export async function serverMode(): Promise<ServerMode> {
  const wanted = process.env.IOT_TEST_SERVERS ?? 'auto';
  if (wanted === 'local' || wanted === 'containers') return wanted;
  return (await dockerEngineAvailable()) ? 'containers' : 'local';
}

/** Presents a container as a {@link ManagedProcess}, so tests stop and restart either alike. */
export function containerProcess(name: string, c: StartedTestContainer): ManagedProcess {
  let running = true;
  return {
    name,
    logFile: `docker logs ${c.getId()}`,
    pid: undefined,
    running: () => running,
    exited: async () => null,
    signal(sig) {
      if (sig === 'SIGKILL' || sig === 'SIGTERM')
        void c.stop({ timeout: sig === 'SIGKILL' ? 0 : 10_000, remove: false }).then(() => (running = false));
      else throw new Error(`${sig} is not supported on containers; run with IOT_TEST_SERVERS=local`);
    },
    async stop() {
      await c.stop({ remove: false });
      running = false;
    },
    async restart() {
      await c.restart();
      running = true;
    },
  };
}

export async function startNatsContainer(goMaxProcs?: number) {
  const { GenericContainer, Wait } = await import('testcontainers');
  const c = await new GenericContainer('nats:2.10-alpine')
    .withCommand(['-js', '-m', '8222'])
    .withEnvironment(goMaxProcs ? { GOMAXPROCS: String(goMaxProcs) } : {})
    .withExposedPorts(4222, 8222)
    .withWaitStrategy(Wait.forHttp('/healthz', 8222))
    .start();
  return {
    c,
    url: `nats://${c.getHost()}:${c.getMappedPort(4222)}`,
    monitorUrl: `http://${c.getHost()}:${c.getMappedPort(8222)}`,
  };
}

export async function startPostgresContainer() {
  const { GenericContainer, Wait } = await import('testcontainers');
  const c = await new GenericContainer(process.env.IOT_TEST_PG_IMAGE ?? 'timescale/timescaledb:latest-pg16')
    .withEnvironment({ POSTGRES_PASSWORD: 'test', POSTGRES_DB: 'iot' })
    .withExposedPorts(5432)
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  return {
    c,
    url: `postgres://postgres:test@${c.getHost()}:${c.getMappedPort(5432)}/iot`,
    port: c.getMappedPort(5432),
  };
}

export async function startMosquittoContainer() {
  const { GenericContainer, Wait } = await import('testcontainers');
  const c = await new GenericContainer('eclipse-mosquitto:2')
    .withCopyContentToContainer([
      {
        content:
          'listener 1883\nallow_anonymous true\npersistence true\npersistence_location /mosquitto/data/\nmax_queued_messages 1000000\n',
        target: '/mosquitto/config/mosquitto.conf',
      },
    ])
    .withExposedPorts(1883)
    .withWaitStrategy(Wait.forListeningPorts())
    .start();
  return { c, url: `mqtt://${c.getHost()}:${c.getMappedPort(1883)}`, port: c.getMappedPort(1883) };
}
