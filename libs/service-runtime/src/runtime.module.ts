import { Global, Module, type DynamicModule } from '@nestjs/common';
import { APP_GUARD, Reflector } from '@nestjs/core';
import { AccessGuard, AccessTokenVerifier } from '@iot/auth-guard';
import { HealthController, PrincipalController } from './health.controller';
import { ENV, JETSTREAM, LOGGER, METRICS, NATS, PUBLISHER, READINESS, type ServiceRuntime } from './runtime';

/** Makes the runtime (NATS, publisher, logger, metrics, readiness, env) injectable everywhere. */
@Global()
@Module({})
export class RuntimeModule {
  static forRoot(runtime: ServiceRuntime, env: unknown): DynamicModule {
    return {
      module: RuntimeModule,
      controllers: [HealthController, PrincipalController],
      providers: [
        { provide: NATS, useValue: runtime.nc },
        { provide: JETSTREAM, useValue: runtime.js },
        { provide: PUBLISHER, useValue: runtime.publisher },
        { provide: LOGGER, useValue: runtime.logger },
        { provide: METRICS, useValue: runtime.metrics },
        { provide: READINESS, useValue: runtime.readiness },
        { provide: ENV, useValue: { ...(env as object) } },
        { provide: AccessTokenVerifier, useValue: runtime.accessTokens },
        // Every HTTP route needs a valid access token unless marked @Public().
        {
          provide: APP_GUARD,
          useFactory: (reflector: Reflector) => new AccessGuard(reflector, runtime.accessTokens),
          inject: [Reflector],
        },
      ],
      exports: [NATS, JETSTREAM, PUBLISHER, LOGGER, METRICS, READINESS, ENV, AccessTokenVerifier],
    };
  }
}
