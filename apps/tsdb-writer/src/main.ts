import { Module } from '@nestjs/common';
import { runService, type ServiceDefinition } from '@iot/service-runtime';
import { TelemetryBatchWriter } from '@iot/tsdb-writer-data-access';
import { writerEnv } from './env';
import { TelemetryWriterController, WRITER } from './telemetry-writer.controller';

export const tsdbWriter: ServiceDefinition<typeof writerEnv> = {
  name: 'tsdb-writer',
  description: 'Batched, idempotent writes of canonical points to TimescaleDB or partitioned PostgreSQL.',
  env: writerEnv,
  consumes: true,
  module: (env) => {
    @Module({
      controllers: [TelemetryWriterController],
      providers: [
        { provide: WRITER, useValue: TelemetryBatchWriter.connect(env.DATABASE_URL, env.DB_POOL_SIZE) },
      ],
    })
    class TsdbWriterModule {}
    return TsdbWriterModule;
  },
};

if (require.main === module) runService(tsdbWriter);
