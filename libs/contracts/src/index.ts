export * from './subjects';
export * from './streams';
export * from './headers';
export * from './payloads';
export * from './validation';
export * from './validators';
export * from './device-keys';
export * from './auth';
