import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { deviceKeyHash, newDeviceKey, type DeviceRecord } from '@iot/contracts';
import {
  buildOnce as buildDistOnce,
  startPipeline as startPipelineAt,
  type Pipeline,
  type PipelineOptions,
} from '@iot/testing';

export { heldBackServices, pipelineReport, type Pipeline } from '@iot/testing';

export const ROOT = resolve(__dirname, '..', '..', '..');

/** Builds dist/ once per test process, so the services run as they are deployed. */
export function buildOnce(): void {
  buildDistOnce(ROOT);
}

/** The pipeline of `libs/testing`, from this checkout's freshly built dist/. */
export function startPipeline(
  devices: DeviceRecord[],
  opts: Omit<PipelineOptions, 'root'> = {},
): Promise<Pipeline> {
  buildOnce();
  return startPipelineAt(devices, { root: ROOT, keepLogs: !!process.env.E2E_KEEP_LOGS, ...opts });
}

/**
 * A device that sends over HTTP: a fresh device key, and the registry record that names its
 * hash (as the auth service writes it when it issues the key).
 */
export function deviceWithKey(
  device: string,
  tenant: string,
  state: DeviceRecord['state'] = 'active',
  model = 'generic',
): { key: string; record: DeviceRecord } {
  const key = newDeviceKey();
  return { key, record: { device, tenant, model, state, key_hashes: [deviceKeyHash(key)] } };
}

/** Publishes one message as a device would, with mosquitto_pub at QoS 1 (client id = device). */
export function mosquittoPub(p: Pipeline, topic: string, clientId: string, message: string): void {
  execFileSync('mosquitto_pub', ['-L', `${p.mqtt.url}/${topic}`, '-q', '1', '-i', clientId, '-m', message]);
}

/** Rows stored for a tenant. */
export async function tenantRows(p: Pipeline, tenant: string): Promise<number> {
  const [{ n }] = await p.pg.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM telemetry WHERE tenant_id = $1`,
    [tenant],
  );
  return Number(n);
}

/** A tenant's rows and its readings among them (distinct device and time), as PostgreSQL counts them. */
export async function tenantReadings(
  p: Pipeline,
  tenant: string,
): Promise<{ rows: string; messages: string }> {
  const [stats] = await p.pg.query<{ rows: string; messages: string }>(
    `SELECT count(*)::text AS rows, count(DISTINCT (device_id, ts))::text AS messages FROM telemetry WHERE tenant_id = $1`,
    [tenant],
  );
  return stats!;
}
