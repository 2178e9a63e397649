export * from './device-client';
export * from './packets';
