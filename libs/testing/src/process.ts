import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, openSync, rmSync, chownSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free TCP port on the loopback interface, as the kernel hands it out. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** `preferred` when it is free to listen on, else a free port. */
export async function portOr(preferred: number | undefined): Promise<number> {
  if (preferred === undefined) return freePort();
  const free = await new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(preferred, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
  return free ? preferred : freePort();
}

/** Temporary directories made here and not yet removed (see `stopEverythingOnSignals`). */
const temps = new Set<string>();

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(process.env.IOT_TEST_TMP ?? tmpdir(), `iot-${prefix}-`));
  temps.add(dir);
  return dir;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `check` every 100 ms until it holds or `timeoutMs` passes; the error names what was
 * awaited and ends with the tail of `logFile`. With `proc`, a process that has exited fails
 * the wait at once (a server that could not bind its port) instead of at the timeout.
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  logFile?: string,
  proc?: { name: string; running(): boolean },
) {
  const deadline = Date.now() + timeoutMs;
  const tail = () =>
    logFile && existsSync(logFile)
      ? `\n--- ${logFile} ---\n${readFileSync(logFile, 'utf8').slice(-3000)}`
      : '';
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      /* not yet */
    }
    if (proc && !proc.running()) throw new Error(`${proc.name} exited while waiting for ${what}${tail()}`);
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${tail()}`);
    await sleep(100);
  }
}

/** Finds an executable on PATH or in the given extra directories. */
export function which(bin: string, extraDirs: string[] = []): string | undefined {
  for (const dir of [...extraDirs, ...(process.env.PATH ?? '').split(':')]) {
    const p = join(dir, bin);
    if (existsSync(p)) return p;
  }
  return undefined;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  readonly pid: number | undefined;
  running(): boolean;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  exited(): Promise<number | null>;
  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT ...) for fault injection. */
  signal(sig: NodeJS.Signals): void;
  /** Stops gracefully (SIGTERM, then SIGKILL after the timeout). */
  stop(timeoutMs?: number): Promise<void>;
  /** Starts the same command again (after a stop or a kill). */
  restart(): Promise<void>;
}

export interface SpawnOptions {
  name: string;
  cmd: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  /** Run as this user (PostgreSQL refuses to run as root). */
  user?: string;
  /** The signal of a graceful stop (default SIGTERM; PostgreSQL's fast shutdown is SIGINT). */
  stopSignal?: NodeJS.Signals;
  cwd?: string;
}

export function spawnManaged(o: SpawnOptions): ManagedProcess {
  let child: ChildProcess | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);
  const start = () => {
    const fd = openSync(o.logFile, 'a');
    // Run as the user directly (not through runuser, which would swallow the stop signal):
    // the child is the server itself, so signals reach it.
    const ids = o.user ? userIds(o.user) : {};
    child = spawn(o.cmd, o.args, {
      stdio: ['ignore', fd, fd],
      env: o.env ?? process.env,
      cwd: o.cwd,
      ...ids,
    });
    live.add(child);
    const c = child;
    exited = new Promise((resolve) => c.once('exit', (code) => (live.delete(c), resolve(code))));
  };
  start();
  return {
    name: o.name,
    logFile: o.logFile,
    get pid() {
      return child?.pid;
    },
    running: () => !!child && child.exitCode === null && child.signalCode === null,
    exited: () => exited,
    signal: (sig) => void child?.kill(sig),
    async stop(timeoutMs = 10_000) {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGCONT');
      child.kill(o.stopSignal ?? 'SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
    async restart() {
      await this.stop();
      start();
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  temps.delete(dir);
}

/**
 * For a command-line tool that starts servers (`./platform bench`, `./platform chaos`): on
 * SIGINT or SIGTERM, kills every process started here, removes the temporary directories not
 * yet removed and exits with 130 or 143. Node's default exits at once and would leave
 * nats-server, PostgreSQL, mosquitto and the services running, with their data in /tmp
 * (a bench stopped by `kill` or a CI timeout, which signal the tool alone).
 */
export function stopEverythingOnSignals(
  say = (line: string) => void process.stderr.write(`${line}\n`),
): void {
  const onSignal = (sig: NodeJS.Signals, code: number) => {
    const children = [...live];
    say(
      `${sig}: stopping the ${children.length} processes this run started and removing its temporary directories`,
    );
    const gone = children.map((c) =>
      c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)),
    );
    for (const c of children) c.kill('SIGKILL');
    // Their directories go once they are gone (at most 5 s).
    void Promise.race([Promise.all(gone), sleep(5_000)]).then(() => {
      for (const dir of temps) rmSync(dir, { recursive: true, force: true });
      process.exit(code);
    });
  };
  process.once('SIGINT', () => onSignal('SIGINT', 130));
  process.once('SIGTERM', () => onSignal('SIGTERM', 143));
}

/** The numeric user and group ids of a system user. */
export function userIds(user: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', user]).toString().trim());
  return { uid, gid };
}

export function chownTo(dir: string, user: string): void {
  const { uid, gid } = userIds(user);
  chownSync(dir, uid, gid);
}

export const isRoot = () => process.getuid?.() === 0;
