import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import type { DeviceRecord } from '@iot/contracts';
import {
  buildOnce as buildDistOnce,
  startPipeline as startPipelineAt,
  type Pipeline,
  type PipelineOptions,
} from '@iot/testing';

export { pipelineReport, type Pipeline } from '@iot/testing';

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

/** Publishes one message as a device would, with mosquitto_pub at QoS 1 (client id = device). */
export function mosquittoPub(p: Pipeline, topic: string, clientId: string, message: string): void {
  execFileSync('mosquitto_pub', ['-L', `${p.mqtt.url}/${topic}`, '-q', '1', '-i', clientId, '-m', message]);
}
