import { Module } from '@nestjs/common';
import { Consumers } from '@iot/contracts';
import { normalizerProfilesView } from '@iot/messaging';
import { serviceNormalizer } from '@iot/normalizer-domain';
import { runService, type ServiceDefinition } from '@iot/service-runtime';
import { NORMALIZER, NormalizerController } from './normalizer.controller';

export const normalizer: ServiceDefinition<Record<string, never>> = {
  name: 'normalizer',
  description: 'Units, scaling, clamping and quality flags: decoded readings to canonical points.',
  env: {},
  consumes: true,
  // Backpressure: the writer reads what the normalizer publishes (BACKPRESSURE_RATIO).
  downstream: () => ({ [Consumers.normalizer.durable]: Consumers.tsdbWriter }),
  module: async (env, runtime) => {
    // Tenants' profiles (config service) loaded before the first message, then kept current.
    const profiles = normalizerProfilesView(runtime.nc, runtime.logger, env.NATS_STREAM_REPLICAS);
    await profiles.start();
    runtime.readiness.add('normalizer-profiles', () => profiles.ready);
    const domain = serviceNormalizer((key) => profiles.get(key));
    @Module({ controllers: [NormalizerController], providers: [{ provide: NORMALIZER, useValue: domain }] })
    class NormalizerModule {}
    return NormalizerModule;
  },
};

if (require.main === module) runService(normalizer);
