import { Module } from '@nestjs/common';
import { runService, type ServiceDefinition } from '@iot/service-runtime';

/**
 * Wiring only for now: the service starts, connects to NATS, provisions the streams, and
 * serves /healthz, /readyz, /metrics and /openapi.json. Its domain arrives with its issue.
 */
@Module({})
export class AuthModule {}

export const auth: ServiceDefinition<Record<string, never>> = {
  name: 'auth',
  description: 'Users, tenants, roles, JWT, the device registry, device keys and certificates.',
  env: {},
  consumes: false,
  module: () => AuthModule,
};

if (require.main === module) runService(auth);
