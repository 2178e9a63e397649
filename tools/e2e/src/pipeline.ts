import { DEVICE_REGISTRY_BUCKET, type DeviceRecord } from '@iot/contracts';
import { connectNats, putDeviceRecords } from '@iot/messaging';
import { createLogger } from '@iot/observability';
import { runMigrations } from '@iot/persistence';
import { startService, type RunningService } from '@iot/service-runtime';
import {
  waitFor,
  freePort,
  startMosquitto,
  startNats,
  startPostgres,
  type MosquittoHandle,
  type NatsHandle,
  type PostgresHandle,
} from '@iot/testing';
import { demux } from '../../../apps/demux/src/main';
import { mqttBridge } from '../../../apps/mqtt-bridge/src/main';
import { normalizer } from '../../../apps/normalizer/src/main';
import { tsdbWriter } from '../../../apps/tsdb-writer/src/main';

export interface Pipeline {
  nats: NatsHandle;
  pg: PostgresHandle;
  mqtt: MosquittoHandle;
  services: RunningService[];
  stop(): Promise<void>;
}

/**
 * Real nats-server, PostgreSQL and mosquitto, and the four services of the first path
 * started in this process (each with its own HTTP port), as `./platform up` starts them.
 */
export async function startPipeline(devices: DeviceRecord[]): Promise<Pipeline> {
  const [nats, pg, mqtt] = await Promise.all([startNats(), startPostgres(), startMosquitto()]);
  const services: RunningService[] = [];
  const stop = async () => {
    for (const s of [...services].reverse()) await s.shutdown().catch(() => undefined);
    await Promise.all([nats.stop(), pg.stop(), mqtt.stop()]);
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
      NATS_URL: nats.url,
      LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'silent',
      SHUTDOWN_GRACE_MS: '10000',
    };
    for (const [def, extra] of [
      [tsdbWriter, { DATABASE_URL: pg.url }],
      [normalizer, {}],
      [demux, {}],
      [mqttBridge, { MQTT_URL: mqtt.url, MQTT_CLIENT_ID: 'e2e-bridge', MQTT_CONNECTIONS: '2' }],
    ] as const)
      services.push(
        await startService(def as never, { ...base, ...extra, HTTP_PORT: String(await freePort()) }),
      );
    for (const s of services)
      await waitFor(`${s.runtime.name} to be ready`, async () => (await fetch(`${s.url}/readyz`)).ok, 30_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { nats, pg, mqtt, services, stop };
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
    return lines.join('\n');
  } finally {
    await nc.close();
  }
}
