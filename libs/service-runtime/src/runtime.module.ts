import { Global, Module, type DynamicModule } from '@nestjs/common';
import { HealthController } from './health.controller';
import { ENV, JETSTREAM, LOGGER, METRICS, NATS, PUBLISHER, READINESS, type ServiceRuntime } from './runtime';

/** Makes the runtime (NATS, publisher, logger, metrics, readiness, env) injectable everywhere. */
@Global()
@Module({})
export class RuntimeModule {
  static forRoot(runtime: ServiceRuntime, env: unknown): DynamicModule {
    return {
      module: RuntimeModule,
      controllers: [HealthController],
      providers: [
        { provide: NATS, useValue: runtime.nc },
        { provide: JETSTREAM, useValue: runtime.js },
        { provide: PUBLISHER, useValue: runtime.publisher },
        { provide: LOGGER, useValue: runtime.logger },
        { provide: METRICS, useValue: runtime.metrics },
        { provide: READINESS, useValue: runtime.readiness },
        { provide: ENV, useValue: { ...(env as object) } },
      ],
      exports: [NATS, JETSTREAM, PUBLISHER, LOGGER, METRICS, READINESS, ENV],
    };
  }
}
