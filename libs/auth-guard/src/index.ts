export * from './access-token-verifier';
export * from './access.guard';
