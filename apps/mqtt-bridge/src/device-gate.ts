import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { deviceKeyHash, Subjects, type DeviceRecord } from '@iot/contracts';
import { DeviceDirectory, deviceRegistryView, type KvView, type NatsConnection } from '@iot/messaging';
import { DeviceRateLimiter, parseRateLimit, rateLimitsByModel } from '@iot/mqtt-bridge-domain';
import type { Logger } from '@iot/observability';
import { ENV, LOGGER, NATS, READINESS, type Readiness } from '@iot/service-runtime';
import type { BridgeEnv } from './env';

/**
 * What every way in (MQTT, HTTP) asks before a device message goes on: which device is
 * this, is it active, and is it within its rate. The registry is an in-memory view kept
 * current from NATS, and the rate budget is one per device whichever way it sends.
 */
@Injectable()
export class DeviceGate implements OnModuleInit, OnApplicationShutdown {
  readonly limiter: DeviceRateLimiter;
  private devices!: KvView<DeviceRecord>;
  private directory!: DeviceDirectory;
  /** When each key's use was last reported (ms), so auth hears of a key once a minute at most. */
  private readonly keyUseReported = new Map<string, number>();

  constructor(
    @Inject(ENV) private readonly env: BridgeEnv,
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(READINESS) private readonly readiness: Readiness,
  ) {
    this.limiter = new DeviceRateLimiter(
      rateLimitsByModel(env.RATE_LIMITS_BY_MODEL, parseRateLimit(env.RATE_LIMIT)),
    );
  }

  async onModuleInit(): Promise<void> {
    this.devices = deviceRegistryView(this.nc, this.logger, this.env.NATS_STREAM_REPLICAS);
    await this.devices.start();
    this.directory = new DeviceDirectory(this.devices);
    this.logger.info({ devices: this.devices.size }, 'device registry loaded');
    this.readiness.add('device-registry', () => this.devices.ready);
  }

  device(id: string): DeviceRecord | undefined {
    return this.devices.get(id);
  }

  /** The device a key belongs to, or undefined for a malformed, unknown or revoked key. */
  deviceByKey(key: string): DeviceRecord | undefined {
    return this.directory.byKey(key);
  }

  /** Tells auth that a key was used (its last-used time), at most once a minute per key. */
  noteKeyUse(record: DeviceRecord, key: string): void {
    const hash = deviceKeyHash(key);
    const now = Date.now();
    if (now - (this.keyUseReported.get(hash) ?? 0) < 60_000) return;
    if (this.keyUseReported.size > 100_000) this.keyUseReported.clear();
    this.keyUseReported.set(hash, now);
    try {
      this.nc.publish(
        Subjects.deviceKeyUsed(record.tenant, record.device),
        JSON.stringify({ key_hash: hash }),
      );
    } catch {
      /* a hint: lost while NATS is away, sent again after a minute */
    }
  }

  onApplicationShutdown(): void {
    this.devices?.stop();
  }
}
