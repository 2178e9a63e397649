import { Module } from '@nestjs/common';
import { runService, type ServiceDefinition } from '@iot/service-runtime';
import { DemuxController } from './demux.controller';
import { demuxEnv } from './env';

@Module({ controllers: [DemuxController] })
export class DemuxModule {}

export const demux: ServiceDefinition<typeof demuxEnv> = {
  name: 'demux',
  description: 'Detects the payload format, decodes and validates device messages.',
  env: demuxEnv,
  consumes: true,
  module: () => DemuxModule,
};

if (require.main === module) runService(demux);
