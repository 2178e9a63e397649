export * from './accounts';
export * from './signing-keys';
export * from './device-ca';
export * from './devices';
export * from './registry-outbox';
