import { serverMode } from './containers';

/**
 * The integration tests' global setup (jest.int.config.js): resolves where the servers come
 * from (local binaries, or containers where a Docker engine answers) once for the run, into
 * IOT_TEST_SERVERS, which the test files then read as they are collected
 * (`resolvedServerMode`).
 */
export default async function globalSetup(): Promise<void> {
  process.env.IOT_TEST_SERVERS = await serverMode();
}
