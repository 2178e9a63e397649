export { startNats, startPostgres, startMosquitto } from './servers';
export type { NatsHandle, NatsNode } from './nats';
export type { PostgresHandle } from './postgres';
export { postgresBinDir } from './postgres';
export type { MosquittoHandle } from './mosquitto';
export { createPki, type Pki } from './pki';
export { dockerEngineAvailable, serverMode } from './containers';
export * from './process';
export * from './service-process';
