export * from './topics';
export * from './message-id';
export * from './rate-limit';
export * from './puback-window';
export * from './frame-reader';
