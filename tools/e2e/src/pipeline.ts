import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { DEVICE_REGISTRY_BUCKET, type DeviceRecord } from '@iot/contracts';
import { connectNats, putDeviceRecords } from '@iot/messaging';
import { createLogger } from '@iot/observability';
import { runMigrations } from '@iot/persistence';
import {
  freePort,
  spawnService,
  startMosquitto,
  startNats,
  startPostgres,
  tempDir,
  removeDir,
  waitReady,
  type MosquittoHandle,
  type NatsHandle,
  type PostgresHandle,
  type ServiceProcess,
} from '@iot/testing';

export const ROOT = resolve(__dirname, '..', '..', '..');

export type PipelineService = ServiceProcess;

export interface Pipeline {
  nats: NatsHandle;
  pg: PostgresHandle;
  mqtt: MosquittoHandle;
  services: PipelineService[];
  service(name: string): PipelineService;
  stop(): Promise<void>;
}

let built = false;

/** Builds dist/ once per test process, so the services run as they are deployed. */
export function buildOnce(): void {
  if (built) return;
  execFileSync(process.execPath, [join(ROOT, 'tools', 'build', 'build.mjs')], { stdio: 'inherit' });
  built = true;
}

/**
 * Real nats-server, PostgreSQL and mosquitto, and the four services of the first path, each
 * its own process started from dist/ as `./platform up` starts them.
 */
export interface PipelineOptions {
  withControlPlane?: boolean;
  /** Extra environment of the bridge, e.g. rate limits. */
  bridgeEnv?: Record<string, string>;
}

export async function startPipeline(devices: DeviceRecord[], opts: PipelineOptions = {}): Promise<Pipeline> {
  buildOnce();
  const [nats, pg, mqtt] = await Promise.all([startNats(), startPostgres(), startMosquitto()]);
  const logs = tempDir('e2e-logs');
  const services: PipelineService[] = [];
  const stop = async () => {
    for (const s of [...services].reverse()) await s.process.stop(15_000);
    await Promise.all([nats.stop(), pg.stop(), mqtt.stop()]);
    if (process.env.E2E_KEEP_LOGS) process.stderr.write(`service logs kept in ${logs}\n`);
    else removeDir(logs);
  };
  try {
    await runMigrations(pg.url);
    const nc = await connectNats({
      servers: nats.urls,
      name: 'e2e-seed',
      logger: createLogger('e2e', 'silent'),
    });
    await putDeviceRecords(nc, DEVICE_REGISTRY_BUCKET, devices);
    await nc.close();
    const base = {
      ...process.env,
      NATS_URL: nats.url,
      LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'warn',
      SHUTDOWN_GRACE_MS: '10000',
    };
    for (const [name, extra] of [
      ['tsdb-writer', { DATABASE_URL: pg.url }],
      ['normalizer', {}],
      ['demux', {}],
      [
        'mqtt-bridge',
        {
          MQTT_URL: mqtt.url,
          MQTT_CLIENT_ID: 'e2e-bridge',
          MQTT_CONNECTIONS: '2',
          // Load tests send far faster than a real device may; rate limiting has its own test.
          RATE_LIMIT: '100000/1000000',
          ...opts.bridgeEnv,
        },
      ],
      ...(opts.withControlPlane ? [['config', {}] as const] : []),
    ] as const) {
      services.push(
        spawnService({
          root: ROOT,
          name,
          port: await freePort(),
          env: { ...base, ...extra },
          logFile: join(logs, `${name}.log`),
        }),
      );
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
    service: (name) => services.find((s) => s.name === name)!,
    stop,
  };
}

/** Where messages are: stream sizes and consumer positions, for a failing test's message. */
export async function pipelineReport(p: Pipeline): Promise<string> {
  const { connect } = await import('@nats-io/transport-node');
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
        const c = await jsm.consumers.info(stream, consumer);
        line += `; ${consumer}: pending ${c.num_pending}, ack pending ${c.num_ack_pending}, redelivered ${c.num_redelivered}`;
      }
      lines.push(line);
    }
    // The dead letters themselves: where and why.
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

/** Publishes one message as a device would, with mosquitto_pub at QoS 1 (client id = device). */
export function mosquittoPub(p: Pipeline, topic: string, clientId: string, message: string): void {
  execFileSync('mosquitto_pub', ['-L', `${p.mqtt.url}/${topic}`, '-q', '1', '-i', clientId, '-m', message]);
}
