import { countsOf, summaryLine } from './summary';

describe('summaryLine', () => {
  it('adds up the runs, counting a suite that could not run as a failure', () => {
    const unit = countsOf({ numPassedTests: 40, numFailedTests: 1, numPendingTests: 2, numTodoTests: 1 });
    const int = countsOf({
      numPassedTests: 9,
      numFailedTests: 0,
      numPendingTests: 0,
      numRuntimeErrorTestSuites: 1,
    });
    expect(summaryLine([unit, int])).toBe('tests: 49 passed, 2 failed, 3 skipped');
  });
});
