export * from './errors';
export * from './connection';
export * from './provisioning';
export * from './publisher';
export * from './consumer';
export * from './transport';
export * from './kv-view';
export { jetstream, jetstreamManager } from '@nats-io/jetstream';
export type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
