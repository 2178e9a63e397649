import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEVICE_REGISTRY_BUCKET, type DeviceRecord } from '@iot/contracts';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { runMigrations } from '@iot/persistence';
import { removeDir, tempDir, freePort, waitFor } from './process';
import { spawnService, waitReady, type ServiceProcess } from './service-process';
import { TestTokenIssuer } from './tokens';
import { startMosquitto, startNats, startPostgres, startTogether } from './servers';
import type { MosquittoHandle } from './mosquitto';
import type { NatsHandle } from './nats';
import type { PostgresHandle } from './postgres';

export type PipelineService = ServiceProcess;

export interface Pipeline {
  nats: NatsHandle;
  pg: PostgresHandle;
  mqtt: MosquittoHandle;
  services: PipelineService[];
  /** Where the services' logs are. */
  logs: string;
  /** The first process of a service. */
  service(name: string): PipelineService;
  /** Every process of a service (replicas). */
  replicasOf(name: string): PipelineService[];
  /** Signs access tokens that every service of the pipeline accepts. */
  tokens: TestTokenIssuer;
  /**
   * Waits until `check` holds. On timeout the error says where the messages are (streams,
   * consumers, dead letters) and ends with the tail of every service's log, so that a test
   * that waited in vain shows which hop held its messages, even after the logs are removed.
   */
  waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs?: number): Promise<void>;
  /** Stops everything; `keepLogs` overrides the option of the same name (a run that failed keeps them). */
  stop(opts?: { keepLogs?: boolean }): Promise<void>;
}

export interface PipelineOptions {
  /** The repository root, whose dist/ holds the built services. */
  root: string;
  withControlPlane?: boolean;
  /** Extra environment of the bridge, e.g. rate limits. */
  bridgeEnv?: Record<string, string>;
  /** Extra environment of every service. */
  serviceEnv?: Record<string, string>;
  /** PostgreSQL with fsync on (benchmarks); tests run it off. */
  durableDatabase?: boolean;
  /** Keep the service logs after stop (their directory is printed). */
  keepLogs?: boolean;
  /** A three-node JetStream cluster with R3 streams instead of one node. */
  natsCluster?: boolean;
  /** nats-server's GOMAXPROCS (NatsOptions.goMaxProcs); Go's default when unset. */
  natsGoMaxProcs?: number;
  /** Processes per worker (default 1): replicas share the durable consumer. */
  replicas?: Partial<Record<'tsdb-writer' | 'normalizer' | 'demux', number>>;
}

/**
 * Real nats-server, PostgreSQL and mosquitto, and the services of the ingest path, each its
 * own process started from dist/ as `./platform up` starts them, with `devices` registered.
 */
export async function startPipeline(devices: DeviceRecord[], opts: PipelineOptions): Promise<Pipeline> {
  const [nats, pg, mqtt] = await startTogether(
    startNats({ nodes: opts.natsCluster ? 3 : 1, goMaxProcs: opts.natsGoMaxProcs }),
    startPostgres({ durable: opts.durableDatabase }),
    startMosquitto(),
  );
  const logs = tempDir('pipeline-logs');
  const tokens = await TestTokenIssuer.create();
  const services: PipelineService[] = [];
  const stop = async (how: { keepLogs?: boolean } = {}) => {
    for (const s of [...services].reverse()) await s.process.stop(15_000);
    await Promise.all([nats.stop(), pg.stop(), mqtt.stop()]);
    if (how.keepLogs ?? opts.keepLogs) process.stderr.write(`service logs kept in ${logs}\n`);
    else removeDir(logs);
  };
  try {
    await runMigrations(pg.url);
    // Written as auth will write them (raw KV, not through @iot/messaging, whose tests use this lib).
    const nc = await connect({ servers: nats.urls, name: 'pipeline-seed' });
    const kv = await new Kvm(nc).create(DEVICE_REGISTRY_BUCKET, {
      history: 1,
      replicas: opts.natsCluster ? 3 : 1,
    });
    for (const d of devices) await kv.put(d.device, JSON.stringify(d));
    await nc.close();
    const base = {
      ...process.env,
      NATS_URL: nats.url,
      LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'warn',
      SHUTDOWN_GRACE_MS: '10000',
      NATS_STREAM_REPLICAS: opts.natsCluster ? '3' : '1',
      ...tokens.env,
      ...opts.serviceEnv,
    };
    for (const [name, extra] of [
      ['tsdb-writer', { DATABASE_URL: pg.url }],
      ['normalizer', {}],
      ['demux', {}],
      [
        'mqtt-bridge',
        {
          MQTT_URL: mqtt.url,
          MQTT_CLIENT_ID: 'pipeline-bridge',
          MQTT_CONNECTIONS: '2',
          // Load tests send far faster than a real device may; rate limiting has its own test.
          RATE_LIMIT: '100000/1000000',
          ...opts.bridgeEnv,
        },
      ],
      ...(opts.withControlPlane ? [['config', {}] as const] : []),
    ] as const) {
      const count = opts.replicas?.[name as keyof NonNullable<PipelineOptions['replicas']>] ?? 1;
      for (let i = 0; i < count; i++) {
        services.push(
          spawnService({
            root: opts.root,
            name,
            port: await freePort(),
            env: { ...base, ...extra },
            logFile: join(logs, count > 1 ? `${name}-${i + 1}.log` : `${name}.log`),
          }),
        );
        // The first service creates every stream alone; the others then find them. Four
        // processes creating the same R3 streams at once on a fresh nats-server 2.9 cluster
        // time out for up to 17 s before one wins (they retry and succeed, but slowly).
        if (services.length === 1) await waitReady(services[0]!);
      }
    }
    for (const s of services) await waitReady(s);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    nats,
    pg,
    mqtt,
    services,
    logs,
    service: (name) => services.find((s) => s.name === name)!,
    replicasOf: (name) => services.filter((s) => s.name === name),
    tokens,
    waitFor: async (what, check, timeoutMs = 30_000) => {
      try {
        await waitFor(what, check, timeoutMs);
      } catch (e) {
        const where = await pipelineReport({ nats }).catch((r) => `no stream report: ${String(r)}`);
        const tails = services.map((s) => {
          const file = s.process.logFile;
          const log = existsSync(file) ? readFileSync(file, 'utf8').slice(-1500) : '(no log)';
          return `--- ${s.name}${s.process.running() ? '' : ' (exited)'} ---\n${log}`;
        });
        throw new Error([(e as Error).message, where, ...tails].join('\n'));
      }
    },
    stop,
  };
}

/** The services whose stages hold back for the next one (`iot_consumer_held_back` 1), by name. */
export async function heldBackServices(p: Pick<Pipeline, 'services'>): Promise<string[]> {
  const held: string[] = [];
  for (const s of p.services) {
    const text = await fetch(`${s.url}/metrics`).then(
      (r) => r.text(),
      () => '',
    );
    if (/^iot_consumer_held_back\{[^}]*\} 1$/m.test(text)) held.push(s.name);
  }
  return held;
}

/** Where messages are: stream sizes and consumer positions, and the dead letters with why. */
export async function pipelineReport(p: Pick<Pipeline, 'nats'>): Promise<string> {
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: p.nats.urls });
  try {
    const jsm = await jetstreamManager(nc);
    const lines: string[] = [];
    for (const [stream, consumer] of [
      ['TELEMETRY_RAW_V1', 'demux'],
      ['TELEMETRY_DECODED_V1', 'normalizer'],
      ['TELEMETRY_NORMALIZED_V1', 'tsdb-writer'],
      ['DLQ_V1', undefined],
    ] as const) {
      const info = await jsm.streams.info(stream);
      let line = `${stream}: ${info.state.messages} messages`;
      if (consumer) {
        const c = await jsm.consumers.info(stream, consumer).catch(() => undefined);
        line += c
          ? `; ${consumer}: pending ${c.num_pending}, ack pending ${c.num_ack_pending}, redelivered ${c.num_redelivered}`
          : `; no consumer ${consumer}`;
      }
      lines.push(line);
    }
    for (let seq = 1; ;) {
      const m = await jsm.direct
        .getMessage('DLQ_V1', { seq, next_by_subj: 'iot.dlq.v1.>' })
        .catch(() => null);
      if (!m) break;
      seq = m.seq + 1;
      lines.push(
        `  dlq ${m.seq} ${m.subject}: ${m.header.get('iot-dlq-reason')}: ${m.header.get('iot-dlq-detail')}`,
      );
    }
    return lines.join('\n');
  } finally {
    await nc.close();
  }
}
