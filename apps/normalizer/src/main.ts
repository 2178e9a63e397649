import { Module } from '@nestjs/common';
import { runService, type ServiceDefinition } from '@iot/service-runtime';
import { NormalizerController } from './normalizer.controller';

@Module({ controllers: [NormalizerController] })
export class NormalizerModule {}

export const normalizer: ServiceDefinition<Record<string, never>> = {
  name: 'normalizer',
  description: 'Units, scaling, clamping and quality flags: decoded readings to canonical points.',
  env: {},
  consumes: true,
  module: () => NormalizerModule,
};

if (require.main === module) runService(normalizer);
