/**
 * `./platform chaos [scenario ...] [--fast]`: each scenario on its own servers and services
 * (a three-node JetStream cluster where the fault needs one), devices sending numbered
 * readings at QoS 1 on persistent sessions, a fault injected and undone, then every reading
 * looked up in the table. Prints a table, writes bench/results/chaos-<time>.json, and exits 1
 * when a scenario lost or duplicated anything.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FAST, FULL, runScenario, SCENARIOS, type ChaosResult } from './chaos';
import { stopEverythingOnSignals } from '@iot/testing';
import { newReport, writeReport } from './report';
import { useLocalServers } from './servers';

const ROOT = resolve(__dirname, '..', '..', '..', '..');

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { fast: { type: 'boolean', default: false } },
  });
  const unknown = positionals.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown scenario ${unknown.join(', ')}: use any of ${SCENARIOS.map((s) => s.name).join(', ')}\n`,
    );
    return 2;
  }
  const chosen = positionals.length ? SCENARIOS.filter((s) => positionals.includes(s.name)) : SCENARIOS;
  const size = values.fast ? FAST : FULL;
  const report = newReport('chaos', { ...size, fast: values.fast });
  const results: ChaosResult[] = [];
  for (const s of chosen) {
    process.stderr.write(`--> ${s.name}: ${s.title}\n`);
    const t0 = Date.now();
    // A scenario that cannot even start (its servers did not come up) is a failed scenario,
    // not the end of the run: the others still run and the report says what happened.
    const r = await runScenario(ROOT, s, size, (m) => process.stderr.write(`    ${m}\n`)).catch(
      (e: unknown): ChaosResult => {
        const message = (e as Error).message ?? String(e);
        // The whole of it here (with the server's log tail), its first line in the report.
        process.stderr.write(`    did not start: ${message}\n`);
        return { ...failedToStart(s.name), failure: `did not start: ${message.split('\n')[0]}` };
      },
    );
    results.push(r);
    report.results[s.name] = {
      lost: r.lostPoints,
      duplicated: r.duplicatedPoints,
      met: r.passed,
      target: '0 lost, 0 duplicated, recovered without a human',
      note: `${r.sent} sent (${r.acked} acked, ${r.poison} poison), ${r.storedMessages} stored, ${r.dlq} in the DLQ, recovered in ${r.recoverS} s${r.deviceSide ? `; devices waited for a PUBACK p99 ${r.deviceSide.pubackMs.p99} ms, at most ${r.deviceSide.pubackMs.max} ms` : ''}; run ${Math.round((Date.now() - t0) / 1000)} s${r.failure ? `; ${r.failure}` : ''}`,
    };
    process.stderr.write(`    ${r.passed ? 'passed' : 'FAILED'}: ${report.results[s.name]!.note}\n`);
  }
  const file = writeReport(ROOT, report);
  const rows = [
    ['scenario', 'sent', 'stored', 'lost', 'dup', 'dlq', 'recover s', ''],
    ...results.map((r) => [
      r.scenario,
      String(r.sent),
      String(r.storedMessages),
      String(r.lostPoints),
      String(r.duplicatedPoints),
      String(r.dlq),
      String(r.recoverS),
      r.passed ? 'passed' : 'FAILED',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  process.stdout.write(
    `\nchaos (${size === FAST ? 'fast' : 'full'}: ${size.messages} messages at ${size.rate}/s per scenario)\n` +
      rows
        .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '))
        .join('\n') +
      `\nlost and dup count points (5 per message); written to ${file}\n`,
  );
  return results.every((r) => r.passed) ? 0 : 1;
}

function failedToStart(scenario: string): ChaosResult {
  const title = SCENARIOS.find((s) => s.name === scenario)?.title ?? scenario;
  return {
    scenario,
    title,
    sent: 0,
    acked: 0,
    poison: 0,
    storedMessages: 0,
    lostPoints: 0,
    duplicatedPoints: 0,
    poisonStored: 0,
    dlq: 0,
    recoverS: 0,
    drained: false,
    passed: false,
  };
}

// Stopped by a signal (Ctrl-C, kill, a CI timeout): no server of this run is left behind.
stopEverythingOnSignals();
useLocalServers();
main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`chaos failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
