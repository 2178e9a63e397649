import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { buildOnce } from '@iot/testing';

const ROOT = resolve(__dirname, '..', '..', '..');

function bench(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'tools', 'bench', 'src', 'main.js'), ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: r.status, stderr: r.stderr };
}

// A mistyped command line stops at once, naming what was wrong, before any server starts
// (a rate of NaN used to start servers and run a step of nothing).
describe('./platform bench, given a bad command line', () => {
  beforeAll(() => buildOnce(ROOT));

  it.each([
    [['e2e', '--rate', 'abc'], "--rate takes a whole number above 0, not 'abc'"],
    [['e2e', '--duration', '0'], "--duration takes a whole number above 0, not '0'"],
    [
      ['e2e', '--steps', '8000,9k'],
      "--steps takes rates in messages per second separated by commas (8000,9000,10000), not '8000,9k'",
    ],
    [['e2e', '--steps', ''], '--steps takes rates in messages per second'],
    [['stages', '--messages=-5'], '--messages takes a whole number above 0'],
    [['e2e', '--rates', '5000'], "Unknown option '--rates'"],
    [['e2 e'], "unknown scenario 'e2 e': use one of baselines, stages, writes, e2e, query or all"],
  ])('%j is refused with exit 2 and says why', (args, why) => {
    const { code, stderr } = bench(...args);
    expect(code).toBe(2);
    expect(stderr).toContain(why);
    expect(stderr).toContain('usage: ./platform bench');
    expect(stderr).not.toContain('-->'); // nothing started
  });
});
