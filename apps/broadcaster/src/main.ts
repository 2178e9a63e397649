import { Module } from '@nestjs/common';
import { runService, type ServiceDefinition } from '@iot/service-runtime';

/**
 * Wiring only for now: the service starts, connects to NATS, provisions the streams, and
 * serves /healthz, /readyz, /metrics and /openapi.json. Its domain arrives with its issue.
 */
@Module({})
export class BroadcasterModule {}

export const broadcaster: ServiceDefinition<Record<string, never>> = {
  name: 'broadcaster',
  description: 'Live telemetry and alarms to browsers over WebSocket, per tenant.',
  env: {},
  consumes: false,
  module: () => BroadcasterModule,
};

if (require.main === module) runService(broadcaster);
