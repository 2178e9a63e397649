import { Module } from '@nestjs/common';
import { runService, type ServiceDefinition } from '@iot/service-runtime';

/**
 * Wiring only for now: the service starts, connects to NATS, provisions the streams, and
 * serves /healthz, /readyz, /metrics and /openapi.json. Its domain arrives with its issue.
 */
@Module({})
export class ConfigModule {}

export const config: ServiceDefinition<Record<string, never>> = {
  name: 'config',
  description: 'Versioned hierarchical configuration, feature flags, audit and rollback; the DLQ admin API.',
  env: {},
  consumes: false,
  // The control plane (and, with issue #4, the DLQ admin API) reports the DLQ's size.
  reportsDlq: true,
  module: () => ConfigModule,
};

if (require.main === module) runService(config);
