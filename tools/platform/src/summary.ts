/** Counts of one Jest run, from its `--json` report. */
export interface JestCounts {
  passed: number;
  failed: number;
  skipped: number;
  /** Suites that failed to run at all (a syntax error, a crash in beforeAll). */
  failedSuites: number;
}

export function countsOf(report: {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests?: number;
  numRuntimeErrorTestSuites?: number;
}): JestCounts {
  return {
    passed: report.numPassedTests,
    failed: report.numFailedTests,
    skipped: report.numPendingTests + (report.numTodoTests ?? 0),
    failedSuites: report.numRuntimeErrorTestSuites ?? 0,
  };
}

/** The one summary line over all suites; a suite that could not run counts as a failed test. */
export function summaryLine(runs: JestCounts[]): string {
  const sum = (k: keyof JestCounts) => runs.reduce((n, r) => n + r[k], 0);
  return `tests: ${sum('passed')} passed, ${sum('failed') + sum('failedSuites')} failed, ${sum('skipped')} skipped`;
}
