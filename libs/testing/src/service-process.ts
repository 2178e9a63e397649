import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { spawnManaged, waitFor, type ManagedProcess } from './process';

/** A platform service running as its own process from dist/, as it is deployed. */
export interface ServiceProcess {
  name: string;
  url: string;
  process: ManagedProcess;
}

/**
 * The V8 heap settings every service runs with (also the Dockerfile's NODE_OPTIONS). Without
 * them V8 sizes its heap to the machine and lets garbage pile up under load: 330-430 MiB
 * RSS per worker on a 24 GiB machine, against 180 MiB with them, for ~10% more GC CPU.
 * A 16 MiB semi-space rather than 8: demux and the normalizer keep a batch or two alive
 * across scavenges, and with 8 MiB (and batches of 1,000) garbage collection was a quarter of
 * demux's CPU. Measured with `./platform bench stages` (docs/performance.md): demux and
 * normalizer about 15% less CPU per message, RSS about 25 MiB more (~210 MiB, before their
 * batches went down to 250); 32 MiB saved a little more but put the workers at 231-244 MiB,
 * too near the pods' 256 MiB limit.
 */
export const SERVICE_NODE_OPTIONS = '--max-old-space-size=128 --max-semi-space-size=16';

/**
 * V8 flags every service runs with that Node refuses in NODE_OPTIONS, so they go on the
 * command line (also the Dockerfile's ENTRYPOINT). With an old space of 128 MiB V8 sizes the
 * heap as a small device's: in a stage of 100,000 messages the writer, with 27-33 MiB alive,
 * had its old generation's limit at 52-59 MiB, and V8 started marking again 40-100 ms after
 * each full collection with the old generation no larger (`--trace-incremental-marking`:
 * "Start (task)", 24-27 MiB left below the limit, less than the young generation could
 * promote), so a full collection came every 80-130 ms, marked mostly by a background thread on
 * the other core that a CPU profile of the main thread does not show. A growing factor of 2
 * (the limit twice what survived): 2-4 full collections a stage in each service instead of
 * 3-22, and per message the writer 8.5-9.3 µs of CPU instead of 17.4-17.6, the bridge 21-23
 * instead of 28-29, demux 21-25 instead of 27-29 (`./platform bench stages`); end to end 14,000
 * msg/s kept up where 13,000 was before. The price is heap: the largest service 181-197 MiB
 * RSS end to end against 157-172 (2026-12-06, docs/performance-history.md).
 */
export const SERVICE_NODE_FLAGS = ['--heap-growing-percent=100'];

/**
 * IOT_SERVICE_NODE_FLAGS: flags for the Node of each service (and of the benchmark's load
 * generator) that Node refuses in NODE_OPTIONS (`--cpu-prof`, `--trace-gc`,
 * `--single-threaded-gc`).
 */
export function serviceNodeFlags(): string[] {
  return global.process.env['IOT_SERVICE_NODE_FLAGS']?.split(/\s+/).filter(Boolean) ?? [];
}

/** Starts `dist/apps/<name>/src/main.js` with the given environment on `port` (HTTP_PORT). */
export function spawnService(o: {
  root: string;
  name: string;
  port: number;
  env: NodeJS.ProcessEnv;
  logFile: string;
}): ServiceProcess {
  const process = spawnManaged({
    name: o.name,
    cmd: global.process.execPath,
    args: [
      ...SERVICE_NODE_FLAGS,
      ...serviceNodeFlags(),
      join(o.root, 'dist', 'apps', o.name, 'src', 'main.js'),
    ],
    logFile: o.logFile,
    // Options the caller sets (a profiler, other heap sizes) come last and win.
    env: {
      ...o.env,
      HTTP_PORT: String(o.port),
      NODE_OPTIONS: `${SERVICE_NODE_OPTIONS} ${o.env.NODE_OPTIONS ?? ''}`.trim(),
    },
    cwd: o.root,
  });
  return { name: o.name, url: `http://127.0.0.1:${o.port}`, process };
}

/** Waits until the service answers `/readyz` with 200; on timeout the error shows its log. */
export function waitReady(s: ServiceProcess, timeoutMs = 60_000): Promise<void> {
  return waitFor(
    `${s.name} to be ready`,
    async () => (await fetch(`${s.url}/readyz`)).ok,
    timeoutMs,
    s.process.logFile,
  );
}

const built = new Set<string>();

/** Builds `<root>/dist` once per test process, so services run as they are deployed. */
export function buildOnce(root: string): void {
  if (built.has(root)) return;
  execFileSync(process.execPath, [join(root, 'tools', 'build', 'build.mjs')], { stdio: 'inherit' });
  built.add(root);
}
