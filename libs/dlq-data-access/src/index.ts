export * from './dead-letter-store';
