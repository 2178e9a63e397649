/**
 * The platform CLI behind `./platform` (which first brings Node 24, the npm packages and the
 * Debian server packages, then builds dist/ and runs this). See `./platform help`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { runMigrations } from '@iot/persistence';
import { dockerEngineAvailable, sleep } from '@iot/testing';
import { healthOf, LocalPlatform, readState, tail, type PlatformState } from './local-platform';
import { countsOf, summaryLine, type JestCounts } from './summary';
import { SERVICES } from './services';

const ROOT = resolve(__dirname, '..', '..', '..', '..');
const STATE = process.env.PLATFORM_STATE ?? join(ROOT, '.state');
const say = (msg: string) => process.stdout.write(`==> ${msg}\n`);

const HELP = `usage: ./platform <command>

  up [-d]            start everything locally (foreground; -d: in the background)
  down               stop what 'up -d' started
  status [--json]    servers, services and their health
  logs <service>     follow a service's log (${SERVICES.map((s) => s.name).join(', ')}, simulator, prometheus)
  test               lint, typecheck, unit and integration tests, then one summary line
  migrate            apply database migrations to $DATABASE_URL (or the running platform's)
  bench [scenario]   benchmarks: baselines, stages, writes, e2e, query or all (default); --quick
                     for a short run; prints a table, writes bench/results/*.json (see docs/performance.md);
                     'bench compare FILE FILE...' prints results files side by side (--only REGEX)
  chaos [scenario..] fault injection: every scenario (or those named) on a real cluster, each
                     reporting sent, stored, lost, duplicated, DLQ and time to recover; --fast
                     for the small runs of ./platform test (see docs/reliability.md)
  kind up|down       the platform on a local kind cluster (needs a Docker engine)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'up':
      return up(args);
    case 'down':
      return down();
    case 'status':
      return status(args.includes('--json'));
    case 'logs':
      return logs(args[0]);
    case 'test':
      return test();
    case 'migrate':
      return migrate();
    case 'bench':
      return runNode(join(ROOT, 'dist', 'tools', 'bench', 'src', 'main.js'), args);
    case 'chaos':
      return runNode(join(ROOT, 'dist', 'tools', 'bench', 'src', 'chaos-main.js'), args);
    case 'kind':
      return kind(args[0]);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return command ? 0 : 2;
    default:
      process.stderr.write(`unknown command '${command}'\n\n${HELP}`);
      return 2;
  }
}

/** Runs a tool from dist/ in the foreground with this Node; its exit code is ours. */
function runNode(script: string, args: string[]): Promise<number> {
  return new Promise((resolveCode) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: 'inherit', cwd: ROOT });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on('SIGINT', forward).on('SIGTERM', forward);
    child.on('exit', (code, signal) => resolveCode(code ?? (signal ? 1 : 0)));
  });
}

async function up(args: string[]): Promise<number> {
  const running = readState(STATE);
  if (running) {
    say(`the platform is already running (pid ${running.supervisorPid}); './platform down' stops it`);
    printState(running, await healthMap(running));
    return 0;
  }
  const rate = Number(process.env.SIMULATOR_RATE ?? 10);
  if (args.includes('-d') || args.includes('--detach')) {
    mkdirSync(join(STATE, 'logs'), { recursive: true });
    const logFile = join(STATE, 'logs', 'platform.log');
    const fd = openSync(logFile, 'a');
    const child = spawn(process.execPath, [__filename, 'up', '--supervise'], {
      detached: true,
      stdio: ['ignore', fd, fd],
      cwd: ROOT,
    });
    child.unref();
    closeSync(fd);
    say(`starting in the background (log: ${logFile})`);
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline) {
      const state = readState(STATE);
      if (state) {
        printState(state, await healthMap(state));
        return 0;
      }
      if (child.exitCode !== null) break;
      await sleep(500);
    }
    process.stderr.write(`the platform did not come up; see ${logFile}\n${tailOf(logFile)}\n`);
    return 1;
  }
  const platform = new LocalPlatform(ROOT, STATE);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping (services drain first)`);
    await platform.stop();
    say('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  try {
    const state = await platform.start({ simulatorRate: rate });
    printState(state, await healthMap(state));
    if (!args.includes('--supervise')) say('running; Ctrl-C stops everything');
  } catch (e) {
    process.stderr.write(`./platform up failed: ${(e as Error).message}\n`);
    await platform.stop().catch(() => undefined);
    return 1;
  }
  await new Promise(() => undefined); // until a signal
  return 0;
}

async function down(): Promise<number> {
  const state = readState(STATE);
  if (!state) {
    say('nothing is running');
    return 0;
  }
  process.kill(state.supervisorPid, 'SIGTERM');
  say(`stopping (pid ${state.supervisorPid})`);
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    try {
      process.kill(state.supervisorPid, 0);
      await sleep(300);
    } catch {
      say('stopped');
      return 0;
    }
  }
  process.stderr.write('the platform did not stop within 90 s\n');
  return 1;
}

async function healthMap(state: PlatformState): Promise<Record<string, boolean>> {
  const entries = await Promise.all(
    state.services.map(async (s) => [s.name, await healthOf(s.url)] as const),
  );
  return Object.fromEntries(entries);
}

async function status(json: boolean): Promise<number> {
  const state = readState(STATE);
  if (!state) {
    if (json)
      process.stdout.write(JSON.stringify({ running: false, servers: {}, services: [], certs: '' }) + '\n');
    else say("not running; './platform up' starts it");
    return json ? 0 : 1;
  }
  const health = await healthMap(state);
  if (json) {
    process.stdout.write(
      JSON.stringify({
        running: true,
        servers: state.servers,
        services: state.services.map((s) => ({
          name: s.name,
          url: s.url,
          pid: s.pid,
          healthy: health[s.name],
        })),
        certs: state.certs,
        logs: state.logs,
      }) + '\n',
    );
  } else printState(state, health);
  return Object.values(health).every(Boolean) ? 0 : 1;
}

function printState(state: PlatformState, health: Record<string, boolean>): void {
  const rows = [
    ['server', 'where'],
    ...Object.entries(state.servers).map(([k, v]) => [k, v || '(not running)']),
  ];
  const w = Math.max(...rows.map((r) => r[0]!.length));
  process.stdout.write('\n' + rows.map(([a, b]) => `  ${a!.padEnd(w)}  ${b}`).join('\n') + '\n\n');
  const sw = Math.max(...state.services.map((s) => s.name.length));
  process.stdout.write(
    `  ${'service'.padEnd(sw)}  health   url (also /metrics, /readyz, /openapi.json, /docs)\n`,
  );
  for (const s of state.services)
    process.stdout.write(`  ${s.name.padEnd(sw)}  ${health[s.name] ? 'healthy' : 'DOWN   '}  ${s.url}\n`);
  process.stdout.write(`
  logs:   ${state.logs}  ('./platform logs <service>')
  certs:  ${state.certs}  (ca.crt, demo-0001.crt, demo-0001.key for ${state.servers.mqtts})
  newest rows:
    psql ${state.servers.postgres} -c "SELECT device_id, metric, value, unit, quality, ts FROM telemetry ORDER BY received_at DESC LIMIT 10"
  publish one reading yourself (demo-0101..demo-0120 are idle):
    mosquitto_pub -L ${state.servers.mqtt}/devices/demo-0101/telemetry -i demo-0101 -q 1 -m '{"ts": '$(date +%s%3N)', "readings": {"temperature": 21.5}}'

`);
}

function logs(service: string | undefined): number {
  const state = readState(STATE);
  const dir = state?.logs ?? join(STATE, 'logs');
  const file = service && join(dir, `${service}.log`);
  if (!file || !existsSync(file)) {
    process.stderr.write(
      `no log for '${service ?? ''}': name one of ${SERVICES.map((s) => s.name).join(', ')}, simulator, prometheus, platform\n`,
    );
    return 2;
  }
  tail(file);
  return 0;
}

async function migrate(): Promise<number> {
  const url = process.env.DATABASE_URL ?? readState(STATE)?.servers.postgres;
  if (!url) {
    process.stderr.write(
      'set DATABASE_URL (postgres://user:pass@host:5432/iot) or start the platform first\n',
    );
    return 2;
  }
  const ran = await runMigrations(url);
  say(ran.length ? `applied ${ran.join(', ')}` : 'schema is up to date');
  return 0;
}

/** Runs a step, streaming its output; returns whether it passed. */
function step(
  title: string,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  quiet = false,
): boolean {
  say(title);
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'inherit'],
    env: { ...process.env, ...env },
  });
  return r.status === 0;
}

function jestRun(title: string, config: string, outFile: string): JestCounts {
  rmSync(outFile, { force: true });
  step(
    title,
    process.execPath,
    [join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js'), '-c', config, '--json', `--outputFile=${outFile}`],
    {
      FORCE_COLOR: '0',
    },
  );
  if (!existsSync(outFile)) return { passed: 0, failed: 0, skipped: 0, failedSuites: 1 };
  return countsOf(JSON.parse(readFileSync(outFile, 'utf8')));
}

async function test(): Promise<number> {
  const started = Date.now();
  mkdirSync(STATE, { recursive: true });
  const bin = (name: string, ...rest: string[]) => join(ROOT, 'node_modules', ...rest, name);
  // The module-boundaries rule reads Nx's project graph: compute it first (a clean clone has none).
  step(
    'project graph (nx show projects)',
    process.execPath,
    [bin('nx.js', 'nx', 'dist', 'bin'), 'show', 'projects'],
    { NX_DAEMON: 'false', NX_NO_CLOUD: 'true' },
    true,
  );
  const lint = step('lint (ESLint with Nx module boundaries)', process.execPath, [
    bin('eslint.js', 'eslint', 'bin'),
    '--max-warnings=0',
    '.',
  ]);
  const types = step('typecheck (tsc --noEmit, strict)', process.execPath, [
    bin('tsc', 'typescript', 'bin'),
    '-p',
    'tsconfig.json',
    '--noEmit',
  ]);
  const unit = jestRun('unit tests (*.spec.ts)', 'jest.unit.config.js', join(STATE, 'jest-unit.json'));
  say(
    `integration tests (*.int-spec.ts) against real servers (${(await dockerEngineAvailable()) ? 'Docker engine found: testcontainers where possible' : 'local binaries'})`,
  );
  const int = jestRun('integration tests', 'jest.int.config.js', join(STATE, 'jest-int.json'));
  const seconds = Math.round((Date.now() - started) / 1000);
  process.stdout.write(
    `\nchecks: lint ${lint ? 'passed' : 'FAILED'}, typecheck ${types ? 'passed' : 'FAILED'} (${cpus().length} cores, ${seconds} s)\n`,
  );
  process.stdout.write(
    `unit: ${unit.passed} passed, ${unit.failed + unit.failedSuites} failed, ${unit.skipped} skipped\n`,
  );
  process.stdout.write(
    `integration: ${int.passed} passed, ${int.failed + int.failedSuites} failed, ${int.skipped} skipped\n`,
  );
  process.stdout.write(`${summaryLine([unit, int])}\n`);
  const ok =
    lint &&
    types &&
    unit.failed + unit.failedSuites + int.failed + int.failedSuites === 0 &&
    unit.passed + int.passed > 0;
  return ok ? 0 : 1;
}

async function kind(sub: string | undefined): Promise<number> {
  if (sub !== 'up' && sub !== 'down') {
    process.stderr.write('usage: ./platform kind up|down\n');
    return 2;
  }
  if (!(await dockerEngineAvailable())) {
    process.stderr.write(
      'no Docker engine answers (a docker client alone is not enough): kind needs one. Use ./platform up here.\n',
    );
    return 1;
  }
  const run = (cmd: string, args: string[]) =>
    spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit' }).status === 0;
  if (sub === 'down') return run('kind', ['delete', 'cluster', '--name', 'iot']) ? 0 : 1;
  if (!run('kind', ['create', 'cluster', '--name', 'iot', '--config', 'k8s/kind-cluster.yaml'])) return 1;
  for (const s of SERVICES) {
    if (!run('docker', ['build', '--build-arg', `APP=${s.name}`, '-t', `iot-platform/${s.name}:dev`, '.']))
      return 1;
    if (!run('kind', ['load', 'docker-image', '--name', 'iot', `iot-platform/${s.name}:dev`])) return 1;
  }
  return run('kubectl', ['apply', '-k', 'k8s/overlays/kind']) ? 0 : 1;
}

function tailOf(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-30).join('\n') : '';
}

main(process.argv.slice(2)).then(
  (code) => {
    if (process.argv[2] !== 'up' || code !== 0 || process.argv.includes('-d')) process.exit(code);
  },
  (e) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
