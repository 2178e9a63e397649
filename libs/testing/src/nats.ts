import { writeFileSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  portOr,
  removeDir,
  spawnManaged,
  tempDir,
  waitFor,
  which,
  type ManagedProcess,
} from './process';

export interface NatsNode {
  name: string;
  url: string;
  monitorUrl: string;
  process: ManagedProcess;
}

export interface NatsHandle {
  /** All client URLs, comma-separated, as NATS_URL takes them. */
  url: string;
  urls: string[];
  monitorUrl: string;
  nodes: NatsNode[];
  dir: string;
  /** Waits until every node answers its health check with JetStream ready. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface NatsOptions {
  /** 1 (default) or 3 for a JetStream cluster. */
  nodes?: 1 | 3;
  /** A lasting directory (for `./platform up`): kept on stop, reused on the next start. */
  dir?: string;
  /** Preferred ports of a single node; free ones are taken when these are busy. */
  clientPort?: number;
  monitorPort?: number;
  /**
   * Go's GOMAXPROCS for each node: how many threads run its Go code at once. Unset, Go takes
   * every core. Where nats-server shares a small machine with the rest of the platform (the
   * benchmark's pipeline, `./platform up`), {@link sharedMachineGoMaxProcs} is cheaper.
   */
  goMaxProcs?: number;
  /** JetStream's `max_file_store` of each node, e.g. '256MB'; unset: nats-server's own. */
  maxFileStore?: string;
}

/**
 * GOMAXPROCS for a nats-server that shares the machine with the platform's other processes:
 * half the cores, at least one. On two cores, with one thread of Go code instead of two,
 * nats-server took 11-12% less CPU per message in the end-to-end bench (2026-12-04,
 * docs/performance.md): fewer wake-ups of one thread by another, which this machine's kernel
 * charges dearly. The environment's IOT_NATS_GOMAXPROCS wins (0: Go's own, every core).
 */
export function sharedMachineGoMaxProcs(): number | undefined {
  const set = process.env['IOT_NATS_GOMAXPROCS'];
  if (set !== undefined && set !== '') {
    const n = Number(set);
    if (!Number.isInteger(n) || n < 0)
      throw new Error(
        `IOT_NATS_GOMAXPROCS is "${set}": give a whole number of threads, or 0 for Go's default`,
      );
    return n === 0 ? undefined : n;
  }
  return Math.max(1, Math.floor(availableParallelism() / 2));
}

/** What a node says of the JetStream meta group: its leader, once there is one. */
async function metaLeader(monitorUrl: string): Promise<string> {
  try {
    const jsz = (await (await fetch(`${monitorUrl}/jsz`)).json()) as { meta_cluster?: { leader?: string } };
    return jsz.meta_cluster?.leader ?? '';
  } catch {
    return '';
  }
}

/**
 * Starts nats-server with JetStream, alone or as a three-node cluster, on free ports. A
 * cluster is ready when every node names the same JetStream meta leader. A server or
 * cluster not ready within 30 s (seen about once in a hundred starts: a port taken between
 * choosing and binding it, and once a single node not healthy, 2026-12-02) is stopped and
 * started again on other ports, once. With a lasting directory (`./platform up`) there is no
 * second try: what failed is in its logs there.
 */
export async function startNats(opts: NatsOptions = {}): Promise<NatsHandle> {
  if (opts.dir) return startNatsOnce(opts);
  try {
    return await startNatsOnce(opts);
  } catch (e) {
    const what = (opts.nodes ?? 1) > 1 ? 'A JetStream cluster did not form' : 'nats-server did not start';
    process.stderr.write(`${what}; starting another on other ports: ${(e as Error).message}\n`);
    return startNatsOnce(opts);
  }
}

async function startNatsOnce(opts: NatsOptions): Promise<NatsHandle> {
  const bin = which('nats-server');
  if (!bin)
    throw new Error(
      'nats-server not found on PATH: install the Debian package nats-server (./platform test does)',
    );
  const count = opts.nodes ?? 1;
  const dir = opts.dir ?? tempDir('nats');
  mkdirSync(dir, { recursive: true });
  const ports = await Promise.all(
    Array.from({ length: count }, async () => ({
      client: await portOr(opts.clientPort),
      monitor: await portOr(opts.monitorPort),
      cluster: await freePort(),
    })),
  );
  const nodes: NatsNode[] = ports.map((p, i) => {
    const name = `n${i + 1}`;
    const storeDir = join(dir, name);
    mkdirSync(storeDir, { recursive: true });
    const routes = ports.filter((_, j) => j !== i).map((q) => `nats-route://127.0.0.1:${q.cluster}`);
    const conf = [
      `server_name: ${name}`,
      `listen: 127.0.0.1:${p.client}`,
      `http: 127.0.0.1:${p.monitor}`,
      `jetstream { store_dir: "${storeDir}"${opts.maxFileStore ? `, max_file_store: ${opts.maxFileStore}` : ''} }`,
      // Go's pprof endpoint (/debug/pprof/profile) for profiling the server in a benchmark:
      // IOT_NATS_PROF_PORT=<port> gives the first node that port (docs/performance.md).
      i === 0 && process.env['IOT_NATS_PROF_PORT']
        ? `prof_port: ${Number(process.env['IOT_NATS_PROF_PORT'])}`
        : '',
      count > 1
        ? `cluster { name: iot-test, listen: 127.0.0.1:${p.cluster}, routes: [${routes.map((r) => `"${r}"`).join(', ')}] }`
        : '',
    ].join('\n');
    const confFile = join(dir, `${name}.conf`);
    writeFileSync(confFile, conf);
    const managed = spawnManaged({
      name: `nats-${name}`,
      cmd: bin,
      args: ['-c', confFile],
      logFile: join(dir, `${name}.log`),
      ...(opts.goMaxProcs ? { env: { ...process.env, GOMAXPROCS: String(opts.goMaxProcs) } } : {}),
    });
    return {
      name,
      url: `nats://127.0.0.1:${p.client}`,
      monitorUrl: `http://127.0.0.1:${p.monitor}`,
      process: managed,
    };
  });
  const handle: NatsHandle = {
    url: nodes.map((n) => n.url).join(','),
    urls: nodes.map((n) => n.url),
    monitorUrl: nodes[0]!.monitorUrl,
    nodes,
    dir,
    async waitHealthy(timeoutMs = 30_000) {
      for (const n of nodes)
        await waitFor(
          `nats-server ${n.name} to be healthy`,
          async () => (await fetch(`${n.monitorUrl}/healthz`)).ok,
          timeoutMs,
          n.process.logFile,
          n.process,
        );
      if (nodes.length > 1)
        await waitFor(
          'the JetStream cluster to agree on a meta leader',
          async () => {
            const leaders = await Promise.all(nodes.map((n) => metaLeader(n.monitorUrl)));
            return leaders[0] !== '' && leaders.every((l) => l === leaders[0]);
          },
          timeoutMs,
          nodes[0]!.process.logFile,
        );
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.process.stop()));
      if (!opts.dir) removeDir(dir);
    },
  };
  try {
    await handle.waitHealthy();
  } catch (e) {
    await handle.stop();
    throw e;
  }
  return handle;
}
