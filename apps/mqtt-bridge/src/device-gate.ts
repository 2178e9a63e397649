import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { deviceKeyHash, isDeviceKey, type DeviceRecord } from '@iot/contracts';
import { deviceRegistryView, type KvView, type NatsConnection } from '@iot/messaging';
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
  private keyIndex = new Map<string, string>();
  private indexedAt = -1;

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
    this.logger.info({ devices: this.devices.size }, 'device registry loaded');
    this.readiness.add('device-registry', () => this.devices.ready);
  }

  device(id: string): DeviceRecord | undefined {
    return this.devices.get(id);
  }

  /** The device a key belongs to, or undefined for a malformed, unknown or revoked key. */
  deviceByKey(key: string): DeviceRecord | undefined {
    if (!isDeviceKey(key)) return undefined;
    // Rebuilt only after the registry changed: a lookup is one hash and one Map read.
    if (this.indexedAt !== this.devices.version) {
      const index = new Map<string, string>();
      for (const r of this.devices.values()) for (const h of r.key_hashes ?? []) index.set(h, r.device);
      this.keyIndex = index;
      this.indexedAt = this.devices.version;
    }
    const device = this.keyIndex.get(deviceKeyHash(key));
    return device === undefined ? undefined : this.devices.get(device);
  }

  onApplicationShutdown(): void {
    this.devices?.stop();
  }
}
