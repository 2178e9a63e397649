export * from './device-client';
