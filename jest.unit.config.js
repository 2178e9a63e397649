// Unit tests: domain logic without I/O, `*.spec.ts` beside each unit.
module.exports = {
  ...require('./jest.preset'),
  displayName: 'unit',
  testMatch: ['**/src/**/*.spec.ts'],
};
