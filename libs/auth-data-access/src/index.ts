export * from './accounts';
export * from './signing-keys';
