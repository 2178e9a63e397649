import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@iot/observability';
import { encodeProtocolInPool } from './protocol-encoding';

export type { NatsConnection };

export interface NatsConnectOptions {
  servers: string[];
  /** The client name shown by the server's monitoring: the service name. */
  name: string;
  logger: Logger;
}

/**
 * Connects with the settings the client gets wrong for a long-running service by default.
 */
export async function connectNats({ servers, name, logger }: NatsConnectOptions): Promise<NatsConnection> {
  encodeProtocolInPool();
  const nc = await connect({
    servers,
    name,
    // Default is 10 attempts, after which the client gives up for good: a service must
    // outlive any outage of its server and carry on when it is back.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    // Start even if the server is not up yet (pods start in any order); keep trying.
    waitOnFirstConnect: true,
    // Detect a frozen (not closed) server within ~20 s rather than minutes.
    pingInterval: 10_000,
    maxPingOut: 2,
    // By default every request (each JetStream publish) builds an Error up front, stack
    // trace and all, in case it times out: about a tenth of a worker's CPU. Our errors
    // name the subject and the operation instead.
    noAsyncTraces: true,
  });
  logger.info({ server: nc.getServer() }, 'connected to NATS');
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error')
        logger.warn({ nats: s.type, server: 'server' in s ? s.server : undefined }, `NATS ${s.type}`);
    }
  })().catch(() => undefined);
  return nc;
}
