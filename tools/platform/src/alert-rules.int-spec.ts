import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { which } from '@iot/testing';

const ROOT = resolve(__dirname, '..', '..', '..');
const PROMETHEUS = join(ROOT, 'deploy', 'prometheus');

function promtool(...args: string[]) {
  const bin = which('promtool');
  if (!bin)
    throw new Error('promtool not found: install the Debian package prometheus (./platform test does)');
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

const files = (dir: string) =>
  readdirSync(join(PROMETHEUS, dir))
    .filter((f) => f.endsWith('.yml'))
    .map((f) => join(PROMETHEUS, dir, f));

// The alerts operators rely on (deploy/prometheus/rules, loaded by ./platform up, compose and
// the CI's promtool step) fire on what they name: promtool evaluates each rule over series
// given in deploy/prometheus/tests, as Prometheus would.
describe('alerting rules', () => {
  it('are valid rule files', () => {
    const r = promtool('check', 'rules', ...files('rules'));
    expect(r.output).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it('fire, and stay quiet, as their unit tests expect', () => {
    const r = promtool('test', 'rules', ...files('tests'));
    expect(r.output).not.toContain('FAILED');
    expect(r.code).toBe(0);
  });
});
