import { Module } from '@nestjs/common';
import { runService, type ServiceDefinition } from '@iot/service-runtime';

/**
 * Wiring only for now: the service starts, connects to NATS, provisions the streams, and
 * serves /healthz, /readyz, /metrics and /openapi.json. Its domain arrives with its issue.
 */
@Module({})
export class AssetWorkerModule {}

export const assetWorker: ServiceDefinition<Record<string, never>> = {
  name: 'asset-worker',
  description: 'Device twins, connectivity, the asset tree and the read API.',
  env: {},
  consumes: false,
  module: () => AssetWorkerModule,
};

if (require.main === module) runService(assetWorker);
