import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildOnce } from '@iot/testing';

const ROOT = resolve(__dirname, '..', '..', '..');

function bench(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'tools', 'bench', 'src', 'main.js'), ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
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

describe('./platform bench compare', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iot-compare-'));
  const file = (name: string, body: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, typeof body === 'string' ? body : JSON.stringify(body));
    return path;
  };
  const run = (started_at: string, publish: number, p99: number) => ({
    scenario: 'e2e',
    started_at,
    machine: { cores: 2, node: 'v24', cpu: 'x' },
    baselines: { js_publish: publish },
    results: { 'e2e @5000/s': { p99_ms: p99, services_over_servers: 0.5 } },
  });
  beforeAll(() => buildOnce(ROOT));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints two runs side by side, starting nothing', () => {
    const a = file('a.json', run('2026-12-05T04:29:13.503Z', 60_000, 150));
    const b = file('b.json', run('2026-12-05T07:49:14.476Z', 36_000, 300));
    const { code, stdout, stderr } = bench('compare', a, b);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout.split('\n').map((l) => l.trim().split(/\s{2,}/))).toEqual([
      ['e2e 12-05T04:29', 'e2e 12-05T07:49', 'last/first'],
      ['baseline js_publish', '60000', '36000', '0.60'],
      ['e2e @5000/s: p99 ms', '150', '300', '2.00'],
      ['e2e @5000/s: services/servers', '0.5', '0.5', '1.00'],
      [''],
    ]);
  });

  it.each([
    [['compare', 'x.json'], 'compare takes two or more results files'],
    [['compare', 'nope.json', 'nope2.json'], "no results file 'nope.json' (looked in . and bench/results)"],
    [['compare', '{broken}', '{other}'], 'is not JSON'],
    [['compare', '{other}', '{other}'], 'is not a results file of ./platform bench'],
    [['compare', '{other}', '{other}', '--only', '(['], '--only takes a regular expression'],
  ])('%j is refused with exit 2 and says why', (args, why) => {
    const paths: Record<string, string> = {
      '{broken}': file('broken.json', '{"scenario": '),
      '{other}': file('other.json', { name: 'a package' }),
    };
    const { code, stderr } = bench(...args.map((a) => paths[a] ?? a));
    expect(code).toBe(2);
    expect(stderr).toContain(why);
    expect(stderr).toContain('usage: ./platform bench');
  });
});
