import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { which } from '@iot/testing';

const ROOT = resolve(__dirname, '..', '..', '..');
const DEPLOY = join(ROOT, 'deploy');

function promtool(...args: string[]) {
  const bin = which('promtool');
  if (!bin)
    throw new Error('promtool not found: install the Debian package prometheus (./platform test does)');
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

const ymlFiles = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yml'))
    .map((f) => join(dir, f));

// The alerts operators rely on (deploy/prometheus/rules, loaded by ./platform up, compose and
// the CI's promtool step) fire on what they name: promtool evaluates each rule over series
// given in deploy/prometheus/tests, as Prometheus would.
describe('alerting rules', () => {
  it('are valid rule files', () => {
    const r = promtool('check', 'rules', ...ymlFiles(join(DEPLOY, 'prometheus', 'rules')));
    expect(r.output).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it('fire, and stay quiet, as their unit tests expect', () => {
    const r = promtool('test', 'rules', ...ymlFiles(join(DEPLOY, 'prometheus', 'tests')));
    expect(r.output).not.toContain('FAILED');
    expect(r.code).toBe(0);
  });
});

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

// A query Prometheus cannot parse shows as an error on the operator's dashboard, not in any
// build: each panel's query, with the dashboard's variables as "All" gives them, is checked by
// promtool as the expression of a recording rule.
describe('Grafana dashboards', () => {
  const dir = join(DEPLOY, 'grafana', 'dashboards');
  const dashboards = readdirSync(dir).filter((f) => f.endsWith('.json'));

  it.each(dashboards)('%s: every panel query is valid PromQL', (file) => {
    const queries: { title: string; expr: string }[] = [];
    const walk = (panels: Panel[] = []) => {
      for (const p of panels) {
        for (const t of p.targets ?? []) if (t.expr) queries.push({ title: p.title ?? '', expr: t.expr });
        walk(p.panels);
      }
    };
    walk((JSON.parse(readFileSync(join(dir, file), 'utf8')) as { panels: Panel[] }).panels);
    expect(queries.length).toBeGreaterThan(0);
    const tmp = mkdtempSync(join(tmpdir(), 'iot-dashboard-'));
    try {
      const rules = join(tmp, 'queries.yml');
      // Named after its panel, so that promtool's error says which one.
      const asRule = ({ title, expr }: { title: string; expr: string }, i: number) =>
        `      - record: panel_${i}_${title.replace(/[^A-Za-z0-9]+/g, '_')}\n` +
        `        expr: ${JSON.stringify(expr.replaceAll('$service', '.*'))}`;
      writeFileSync(rules, `groups:\n  - name: panels\n    rules:\n${queries.map(asRule).join('\n')}\n`);
      const r = promtool('check', 'rules', rules);
      expect(r.output).toContain(`SUCCESS: ${queries.length} rules found`);
      expect(r.code).toBe(0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
