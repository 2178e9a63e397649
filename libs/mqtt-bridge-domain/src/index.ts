export * from './topics';
export * from './message-id';
