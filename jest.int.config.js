// Integration tests: `*.int-spec.ts` against real servers started by @iot/testing.
module.exports = {
  ...require('./jest.preset'),
  displayName: 'integration',
  testMatch: ['**/src/**/*.int-spec.ts'],
  testTimeout: 120_000,
  // Resolves IOT_TEST_SERVERS (local binaries or containers) once, before the files are read.
  globalSetup: '<rootDir>/libs/testing/src/global-setup.ts',
  // Servers are started per test file; run files one after another on small machines.
  maxWorkers: 1,
};
