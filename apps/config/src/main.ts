import { Module } from '@nestjs/common';
import { DeadLetterStore } from '@iot/dlq-data-access';
import { deviceRegistryView, jetstreamManager } from '@iot/messaging';
import { runService, type ServiceDefinition } from '@iot/service-runtime';
import { DLQ_STORE, DlqController } from './dlq.controller';

/**
 * The control plane. Today: the dead-letter queue API (tenant-scoped list, inspect, replay,
 * purge). Versioned configuration, feature flags, audit and rollback come with their issue.
 */
export const config: ServiceDefinition<Record<string, never>> = {
  name: 'config',
  description:
    'Control plane: the dead-letter queue API; configuration, feature flags, audit and rollback to come.',
  env: {},
  consumes: false,
  // The control plane reports the DLQ's size.
  reportsDlq: true,
  module: async (env, runtime) => {
    const devices = deviceRegistryView(runtime.nc, runtime.logger, env.NATS_STREAM_REPLICAS);
    await devices.start();
    runtime.readiness.add('device-registry', () => devices.ready);
    const store = new DeadLetterStore(await jetstreamManager(runtime.nc), runtime.publisher, devices);
    @Module({ controllers: [DlqController], providers: [{ provide: DLQ_STORE, useValue: store }] })
    class ConfigModule {}
    return ConfigModule;
  },
};

if (require.main === module) runService(config);
