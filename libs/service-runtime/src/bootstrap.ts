import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import express from 'express';
import { Module, type INestApplication, type Type } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { byteSize, commonEnv, loadEnv, natsServers, share, str, type EnvSpec } from '@iot/config';
import { DEFAULT_TOKEN_AUDIENCE, DEFAULT_TOKEN_ISSUER, type ConsumerContract } from '@iot/contracts';
import { AccessTokenVerifier } from '@iot/auth-guard';
import {
  connectNats,
  ensureAllStreams,
  jetstream,
  jetstreamManager,
  reportDlqSize,
  whenJetStreamAnswers,
  JetStreamPublisher,
  JetStreamServer,
} from '@iot/messaging';
import { createLogger, IotMetrics, PinoNestLogger, startTracing, stopTracing } from '@iot/observability';
import { num } from 'envalid';
import { RuntimeModule } from './runtime.module';
import { TransportErrorFilter } from './error-filter';
import { Readiness, type ServiceRuntime } from './runtime';

const runtimeEnv = {
  ...commonEnv,
  AUTH_JWKS_URL: str({
    default: '',
    desc: "The auth service's JWKS, e.g. http://auth:3000/.well-known/jwks.json; without it (or AUTH_JWKS) every API route answers 503",
  }),
  AUTH_JWKS: str({
    default: '',
    desc: 'The public keys as an inline JWKS document, instead of AUTH_JWKS_URL',
  }),
  AUTH_ISSUER: str({ default: DEFAULT_TOKEN_ISSUER, desc: 'The iss every access token must carry' }),
  AUTH_AUDIENCE: str({ default: DEFAULT_TOKEN_AUDIENCE, desc: 'The aud every access token must carry' }),
  BATCH_LINGER_MS: num({
    default: undefined,
    desc: "How long a partial batch waits for more messages (ms), for every consumer of the service; unset: each consumer's own setting (demux and normalizer 20, tsdb-writer 50). Lower: less latency for more, smaller batches and more CPU at moderate rates",
  }),
  PUBLISH_LINGER_MS: num({
    default: 0,
    desc: "How long a JetStream publish may wait (ms) for others to leave with it in one socket write; 0: the end of the event-loop turn (the services that publish a batch at a time). The bridge's telemetry waits in its RAW_PACK_LINGER_MS instead",
  }),
  BACKPRESSURE_RATIO: share({
    default: 0.5,
    desc: "A pipeline stage takes no more messages while the next stage's consumer is behind by more than this share of its stream's byte limit, and goes on below four fifths of it: the backlog waits in the stage's own stream instead of being discarded from the next (docs/reliability.md). 0 turns it off",
  }),
  NATS_STREAM_REPLICAS: num({
    default: 1,
    choices: [1, 3, 5],
    desc: 'Replicas of each stream: 1 locally, 3 in production',
  }),
  NATS_STREAM_STORAGE: byteSize({
    default: undefined,
    desc: "The JetStream file storage the platform's streams may reserve together on a server, e.g. 768MB or 40GB (below jetstream.max_file_store); each stream's limit is cut in proportion. Unset: each stream's own limit (28 GiB in all)",
  }),
};

export interface ServiceDefinition<S extends EnvSpec> {
  /** The service name: log field, metric label, NATS client name and durable consumer name. */
  name: string;
  description: string;
  /** The app's own variables; the common ones (NATS_URL, HTTP_PORT, ...) are added. */
  env: S;
  /** Builds the app's root module from its validated environment and the runtime. */
  module: (
    env: ReturnType<typeof loadEnv<S & typeof runtimeEnv>>,
    runtime: ServiceRuntime,
  ) => Type<unknown> | Promise<Type<unknown>>;
  /** Whether the module has `@EventPattern` handlers to attach as JetStream consumers. */
  consumes: boolean;
  /**
   * For each of the service's consumers (by durable name) that publishes into the next stage,
   * that stage's consumer: backpressure (BACKPRESSURE_RATIO).
   */
  downstream?: (
    env: ReturnType<typeof loadEnv<S & typeof runtimeEnv>>,
  ) => Readonly<Record<string, ConsumerContract>>;
  /** Reports `iot_dlq_size` every few seconds (the control plane does; workers do with their lag). */
  reportsDlq?: boolean;
  /**
   * HTTP routes whose request bodies reach the handler as the exact bytes (a Buffer),
   * whatever the content type: device payloads are decoded by the pipeline, not by Express.
   */
  rawBodyRoutes?: { paths: string[]; limitBytes: number };
  /** Extra work at shutdown, after consumers stopped and before NATS drains. */
  onShutdown?: () => Promise<void>;
}

export interface RunningService {
  app: INestApplication;
  runtime: ServiceRuntime;
  url: string;
  /** Drains and closes everything; what SIGTERM calls. */
  shutdown(): Promise<void>;
}

/**
 * Starts a service the same way everywhere: validate the environment, connect to NATS,
 * provision streams, serve /healthz /readyz /metrics /openapi.json /docs, attach consumers.
 */
export async function startService<S extends EnvSpec>(
  def: ServiceDefinition<S>,
  source = process.env,
): Promise<RunningService> {
  const env = loadEnv(def.name, { ...runtimeEnv, ...def.env }, source);
  const logger = createLogger(def.name, env.LOG_LEVEL);
  await startTracing(def.name, env.OTEL_EXPORTER_OTLP_ENDPOINT);
  const metrics = new IotMetrics(def.name);
  // Each service's own stage series exist from the start (at zero until it does work).
  metrics.initStage(def.name);
  const nc = await connectNats({ servers: natsServers(env.NATS_URL), name: def.name, logger });
  await whenJetStreamAnswers(
    'streams',
    () =>
      ensureAllStreams(nc, {
        replicas: env.NATS_STREAM_REPLICAS,
        storageBytes: env.NATS_STREAM_STORAGE,
      }),
    logger,
  );
  const js = jetstream(nc);
  const publisher = new JetStreamPublisher(nc, logger, { lingerMs: env.PUBLISH_LINGER_MS });
  const readiness = new Readiness();
  readiness.add('nats', () => !nc.isClosed() && nc.getServer() !== '' && !reconnecting);
  let reconnecting = false;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') reconnecting = true;
      if (s.type === 'reconnect') reconnecting = false;
    }
  })().catch(() => undefined);
  const accessTokens = new AccessTokenVerifier({
    jwksUrl: env.AUTH_JWKS_URL || undefined,
    jwks: env.AUTH_JWKS || undefined,
    issuer: env.AUTH_ISSUER,
    audience: env.AUTH_AUDIENCE,
  });
  const runtime: ServiceRuntime = {
    name: def.name,
    nc,
    js,
    publisher,
    logger,
    metrics,
    readiness,
    accessTokens,
  };

  const appModule = await def.module(env as never, runtime);
  @Module({ imports: [RuntimeModule.forRoot(runtime, env), appModule] })
  class RootModule {}

  const app = await NestFactory.create(RootModule, { logger: new PinoNestLogger(logger), bufferLogs: false });
  // Registered before Nest's own JSON parser (added at init), so these routes get bytes.
  for (const path of def.rawBodyRoutes?.paths ?? [])
    app.use(path, express.raw({ type: () => true, limit: def.rawBodyRoutes!.limitBytes }));
  // Before the transport connects: it inherits the filter (inheritAppConfig).
  app.useGlobalFilters(new TransportErrorFilter(logger));
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle(def.name)
      .setDescription(def.description)
      .setVersion('1')
      .addBearerAuth()
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'openapi.json' });

  let dlqTimer: NodeJS.Timeout | undefined;
  if (def.reportsDlq) {
    const jsm = await jetstreamManager(nc);
    const report = () => reportDlqSize(jsm, metrics).catch(() => undefined);
    void report();
    dlqTimer = setInterval(report, 5_000);
    dlqTimer.unref();
  }

  let transport: JetStreamServer | undefined;
  if (def.consumes) {
    transport = new JetStreamServer({
      nc,
      js,
      publisher,
      logger,
      metrics,
      lingerMs: env.BATCH_LINGER_MS,
      backpressure: { downstream: def.downstream?.(env) ?? {}, ratio: env.BACKPRESSURE_RATIO },
    });
    app.connectMicroservice({ strategy: transport }, { inheritAppConfig: true });
    readiness.add('consumers', () => transport!.attached);
  }
  await app.startAllMicroservices();
  await app.listen(env.HTTP_PORT, '0.0.0.0');
  const url = `http://127.0.0.1:${env.HTTP_PORT}`;
  logger.info({ url, openapi: `${url}/openapi.json` }, `${def.name} started`);

  let shuttingDown: Promise<void> | undefined;
  const shutdown = () =>
    (shuttingDown ??= (async () => {
      logger.info('shutting down: draining consumers');
      clearInterval(dlqTimer);
      await transport?.close();
      await def.onShutdown?.();
      await app.close();
      publisher.close();
      if (!nc.isClosed()) await nc.drain();
      await stopTracing();
      logger.info('stopped');
    })());
  return { app, runtime, url, shutdown };
}

/** The `main.ts` of every service: start, and on SIGTERM or SIGINT drain and exit 0. */
export function runService<S extends EnvSpec>(def: ServiceDefinition<S>): void {
  startService(def).then(
    (svc) => {
      const graceMs = Number(process.env.SHUTDOWN_GRACE_MS ?? 25_000);
      const onSignal = (signal: string) => {
        svc.runtime.logger.info({ signal }, 'signal received');
        const timer = setTimeout(() => {
          svc.runtime.logger.error({ graceMs }, 'drain did not finish within the grace period; exiting');
          process.exit(1);
        }, graceMs);
        timer.unref();
        svc.shutdown().then(
          () => process.exit(0),
          (e) => {
            svc.runtime.logger.error({ err: String(e) }, 'error while shutting down');
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      // A crash still ends the process (the orchestrator restarts it; nothing unacked is
      // lost), but says why in the service's own log first.
      const fatal = (kind: string) => (e: unknown) => {
        svc.runtime.logger.fatal({ err: e instanceof Error ? (e.stack ?? e.message) : String(e) }, kind);
        process.exit(1);
      };
      process.on('uncaughtException', fatal('uncaught exception; exiting'));
      process.on('unhandledRejection', fatal('unhandled rejection; exiting'));
    },
    (e) => {
      // The environment error already names each variable; print it plainly for operators.
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
