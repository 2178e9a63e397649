export * from './accounts';
export * from './devices';
