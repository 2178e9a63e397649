import { Module } from '@nestjs/common';
import { runService, type ServiceDefinition } from '@iot/service-runtime';

/**
 * Wiring only for now: the service starts, connects to NATS, provisions the streams, and
 * serves /healthz, /readyz, /metrics and /openapi.json. Its domain arrives with its issue.
 */
@Module({})
export class EventEngineModule {}

export const eventEngine: ServiceDefinition<Record<string, never>> = {
  name: 'event-engine',
  description: 'Alarm rules, alarm lifecycle, escalation and notifications.',
  env: {},
  consumes: false,
  module: () => EventEngineModule,
};

if (require.main === module) runService(eventEngine);
