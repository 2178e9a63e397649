import { CustomTransportStrategy, Server } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ConsumerContract } from '@iot/contracts';
import type { IotMetrics, Logger } from '@iot/observability';
import { ConsumerRunner, type Delivery, type MessageMeta, type PayloadDecoder } from './consumer';
import type { JetStreamPublisher } from './publisher';

/** Extras of an `@EventPattern(contract.durable, extras)` handled by {@link JetStreamServer}. */
export interface JetStreamPatternExtras<T = unknown> {
  consumer: ConsumerContract;
  decoder: PayloadDecoder<T>;
  /** The handler takes `Delivery<T>[]` and returns, or a Map of failures by index. */
  batch?: boolean;
  batchSize?: number;
  /** How long a partial batch waits for more messages (ConsumerRunnerOptions.lingerMs). */
  lingerMs?: number;
  /** A batch this large starts without its linger (ConsumerRunnerOptions.minBatch). */
  minBatch?: number;
  /** Batches processed at once (ConsumerRunnerOptions.concurrency). */
  concurrency?: number;
}

export interface JetStreamServerOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  publisher: JetStreamPublisher;
  logger: Logger;
  metrics: IotMetrics;
  /** Overrides every pattern's `lingerMs` (an operator's setting, BATCH_LINGER_MS). */
  lingerMs?: number;
  /**
   * Backpressure (ConsumerRunnerOptions.holdBackFor): `downstream` names, for a consumer of
   * this service (by durable name), the next stage's consumer that reads what it publishes.
   * The consumer takes nothing more while that one's backlog fills more than `ratio` of its
   * stream's byte limit, and goes on below four fifths of it. A ratio of 0 turns it off.
   */
  backpressure?: { downstream: Readonly<Record<string, ConsumerContract>>; ratio: number };
}

/**
 * NestJS transport over JetStream pull consumers: each `@EventPattern` whose extras name a
 * consumer contract gets a {@link ConsumerRunner}. Handlers receive the decoded payload
 * (and `@Ctx()` the {@link MessageMeta}), never a `JsMsg`; settlement happens here.
 */
export class JetStreamServer extends Server implements CustomTransportStrategy {
  private readonly runners: ConsumerRunner<unknown>[] = [];

  constructor(private readonly options: JetStreamServerOptions) {
    super();
  }

  /** True when every consumer fetched recently: the readiness signal. */
  get attached(): boolean {
    return this.runners.every((r) => r.isAttached);
  }

  async listen(callback: (...optionalParams: unknown[]) => unknown): Promise<void> {
    try {
      for (const [pattern, handler] of this.messageHandlers) {
        const extras = handler.extras as JetStreamPatternExtras | undefined;
        if (!extras?.consumer) {
          throw new Error(
            `@EventPattern('${pattern}') has no consumer contract in its extras: pass { consumer, decoder }`,
          );
        }
        const call = async (data: unknown, meta: MessageMeta | undefined) => {
          const result = await handler(data, meta);
          await lastValueFrom(this.transformToObservable(result), { defaultValue: undefined });
        };
        const runner = new ConsumerRunner<unknown>({
          ...this.options,
          contract: extras.consumer,
          decoder: extras.decoder,
          batchSize: extras.batchSize,
          lingerMs: this.options.lingerMs ?? extras.lingerMs,
          minBatch: extras.minBatch,
          concurrency: extras.concurrency,
          holdBackFor: this.holdBackFor(extras.consumer),
          handler: extras.batch
            ? {
                kind: 'batch',
                fn: async (batch: Delivery<unknown>[]) => {
                  const result = await handler(batch, undefined);
                  return (await lastValueFrom(this.transformToObservable(result), {
                    defaultValue: undefined,
                  })) as void | Map<number, unknown>;
                },
              }
            : { kind: 'message', fn: call },
        });
        await runner.start();
        this.runners.push(runner);
        this.options.logger.info(
          { consumer: extras.consumer.durable, stream: extras.consumer.stream },
          'consumer attached',
        );
      }
      callback();
    } catch (e) {
      callback(e);
    }
  }

  private holdBackFor(own: ConsumerContract) {
    const b = this.options.backpressure;
    const consumer = b && b.ratio > 0 ? b.downstream[own.durable] : undefined;
    return consumer && b ? { consumer, above: b.ratio, below: b.ratio * 0.8 } : undefined;
  }

  /** Stops fetching and waits until every message in flight is settled. */
  async close(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.stop()));
  }

  on(): never {
    throw new Error('JetStreamServer does not emit events');
  }

  unwrap<T>(): T {
    return this.options.nc as T;
  }
}
