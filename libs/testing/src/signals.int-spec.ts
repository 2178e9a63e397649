import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { buildOnce, sleep } from './index';

const ROOT = resolve(__dirname, '..', '..', '..');

/** Whether a process of that pid still runs (a zombie counts as gone). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

// What `./platform bench` and `./platform chaos` do when a user presses Ctrl-C or CI kills them.
describe('a tool that started servers, stopped by a signal', () => {
  beforeAll(() => buildOnce(ROOT));

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)(
    'on %s stops nats-server, PostgreSQL and mosquitto and removes their directories',
    async (sig, code) => {
      // A tool as the bench is one: it starts servers through @iot/testing and waits.
      const tool = spawn(
        process.execPath,
        [
          '-e',
          `const t = require(process.env.TESTING_JS);
         t.stopEverythingOnSignals();
         Promise.all([t.startNats(), t.startPostgres(), t.startMosquitto()]).then(([n, pg, m]) => {
           const own = t.tempDir('signal-probe');
           process.stdout.write(JSON.stringify({
             pids: [n.nodes[0].process.pid, pg.process.pid, m.process.pid],
             dirs: [n.dir, pg.dir, m.dir, own],
           }) + '\\n');
           setInterval(() => {}, 1000);
         });`,
        ],
        {
          env: { ...process.env, TESTING_JS: join(ROOT, 'dist', 'libs', 'testing', 'src', 'index.js') },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stderr = '';
      tool.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const exited = new Promise<number | null>((r) => tool.once('exit', (c) => r(c)));
      const first = await new Promise<string>((resolveLine, reject) => {
        createInterface({ input: tool.stdout }).once('line', resolveLine);
        void exited.then(() => reject(new Error(`the tool exited before its servers were up:\n${stderr}`)));
      });
      const { pids, dirs } = JSON.parse(first) as { pids: number[]; dirs: string[] };
      expect(pids.every(running)).toBe(true);
      expect(dirs.every((d) => existsSync(d))).toBe(true);

      tool.kill(sig);
      expect(await exited).toBe(code);
      expect(stderr).toContain(`${sig}: stopping the 3 processes this run started`);
      for (let i = 0; i < 50 && pids.some(running); i++) await sleep(100);
      expect(pids.filter(running)).toEqual([]);
      expect(dirs.filter((d) => existsSync(d))).toEqual([]);
    },
  );
});
