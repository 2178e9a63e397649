export * from './telemetry-batch-writer';
