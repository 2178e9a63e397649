export * from './runtime';
export * from './runtime.module';
export * from './health.controller';
export * from './bootstrap';
export * from './error-filter';
