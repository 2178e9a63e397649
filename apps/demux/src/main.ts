import { Module } from '@nestjs/common';
import { Consumers } from '@iot/contracts';
import { normalizerProfilesView } from '@iot/messaging';
import { serviceNormalizer, type Normalizer } from '@iot/normalizer-domain';
import { runService, type ServiceDefinition } from '@iot/service-runtime';
import { DemuxController, INLINE_NORMALIZER } from './demux.controller';
import { demuxEnv } from './env';

export const demux: ServiceDefinition<typeof demuxEnv> = {
  name: 'demux',
  description: 'Detects the payload format, decodes and validates device messages.',
  env: demuxEnv,
  consumes: true,
  // Backpressure: the stage that reads what demux publishes (BACKPRESSURE_RATIO).
  downstream: (env) => ({
    [Consumers.demux.durable]: env.NORMALIZE_IN_DEMUX ? Consumers.tsdbWriter : Consumers.normalizer,
  }),
  module: async (env, runtime) => {
    let inline: Normalizer | null = null;
    if (env.NORMALIZE_IN_DEMUX) {
      // The normalizer's own domain and tenants' profiles, as the normalizer service loads them.
      const profiles = normalizerProfilesView(runtime.nc, runtime.logger, env.NATS_STREAM_REPLICAS);
      await profiles.start();
      runtime.readiness.add('normalizer-profiles', () => profiles.ready);
      inline = serviceNormalizer((key) => profiles.get(key));
    }
    @Module({ controllers: [DemuxController], providers: [{ provide: INLINE_NORMALIZER, useValue: inline }] })
    class DemuxModule {}
    return DemuxModule;
  },
};

if (require.main === module) runService(demux);
