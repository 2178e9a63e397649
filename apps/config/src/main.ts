import { Module } from '@nestjs/common';
import { DeadLetterStore } from '@iot/dlq-data-access';
import {
  NORMALIZER_PROFILES_BUCKET,
  NORMALIZER_PROFILES_HISTORY,
  Validators,
  type ModelProfile,
} from '@iot/contracts';
import { deviceRegistryView, jetstreamManager, VersionedKv } from '@iot/messaging';
import { runService, type ServiceDefinition } from '@iot/service-runtime';
import { DLQ_STORE, DlqController } from './dlq.controller';
import { PROFILES, ProfilesController } from './profiles.controller';

/**
 * The control plane. Today: the dead-letter queue API (tenant-scoped list, inspect, replay,
 * purge) and tenants' normalizer profiles (versioned, with rollback). Hierarchical
 * configuration, feature flags and audit come with their issue.
 */
export const config: ServiceDefinition<Record<string, never>> = {
  name: 'config',
  description:
    'Control plane: the dead-letter queue API and normalizer profiles; feature flags and audit to come.',
  env: {},
  consumes: false,
  // The control plane reports the DLQ's size.
  reportsDlq: true,
  module: async (env, runtime) => {
    const devices = deviceRegistryView(runtime.nc, runtime.logger, env.NATS_STREAM_REPLICAS);
    await devices.start();
    runtime.readiness.add('device-registry', () => devices.ready);
    const store = new DeadLetterStore(await jetstreamManager(runtime.nc), runtime.publisher, devices);
    const profiles = await VersionedKv.open<ModelProfile>(
      runtime.nc,
      NORMALIZER_PROFILES_BUCKET,
      (v) => (Validators.modelProfile.assert(v), v),
      { replicas: env.NATS_STREAM_REPLICAS, history: NORMALIZER_PROFILES_HISTORY },
    );
    @Module({
      controllers: [DlqController, ProfilesController],
      providers: [
        { provide: DLQ_STORE, useValue: store },
        { provide: PROFILES, useValue: profiles },
      ],
    })
    class ConfigModule {}
    return ConfigModule;
  },
};

if (require.main === module) runService(config);
