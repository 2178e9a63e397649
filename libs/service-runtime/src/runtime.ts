import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamPublisher } from '@iot/messaging';
import type { IotMetrics, Logger } from '@iot/observability';
import type { AccessTokenVerifier } from '@iot/auth-guard';

/** Injection tokens of what every service has, provided by {@link RuntimeModule}. */
export const NATS = Symbol('NatsConnection');
export const JETSTREAM = Symbol('JetStreamClient');
export const PUBLISHER = Symbol('JetStreamPublisher');
export const LOGGER = Symbol('Logger');
export const METRICS = Symbol('IotMetrics');
export const READINESS = Symbol('Readiness');
export const ENV = Symbol('Env');

export interface ServiceRuntime {
  name: string;
  nc: NatsConnection;
  js: JetStreamClient;
  publisher: JetStreamPublisher;
  logger: Logger;
  metrics: IotMetrics;
  readiness: Readiness;
  /** Checks the access token of every HTTP request (the global guard uses it). */
  accessTokens: AccessTokenVerifier;
}

export type ReadinessCheck = () => boolean | Promise<boolean>;

/** Named checks that must all pass for `/readyz` to answer 200. */
export class Readiness {
  private readonly checks = new Map<string, ReadinessCheck>();

  add(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  async evaluate(): Promise<{ ready: boolean; checks: Record<string, boolean> }> {
    const checks: Record<string, boolean> = {};
    for (const [name, check] of this.checks) {
      try {
        checks[name] = await check();
      } catch {
        checks[name] = false;
      }
    }
    return { ready: Object.values(checks).every(Boolean), checks };
  }
}
