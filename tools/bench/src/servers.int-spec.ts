import { execFileSync } from 'node:child_process';
import { postgresBinDir, serverMode } from '@iot/testing';
import { serverVersions, startServers, type BenchServers } from './servers';

describe("the bench's servers (real nats-server, PostgreSQL, mosquitto)", () => {
  let s: BenchServers;
  beforeAll(async () => {
    s = await startServers([]);
  }, 120_000);
  afterAll(async () => {
    await s?.stop();
  });

  it('say their versions, as the binaries that run them report', async () => {
    const v = await serverVersions(s);
    expect(v.nats_server).toMatch(/^\d+\.\d+\.\d+/);
    expect(v.mosquitto).toMatch(/^\d+\.\d+\.\d+$/);
    expect(v.postgres).toMatch(/^\d+\.\d+/);
    if ((await serverMode()) === 'containers') {
      expect(v.timescaledb).toMatch(/^\d+\.\d+\.\d+/); // the TimescaleDB image
      return;
    }
    const output = (cmd: string, args: string[]) => {
      try {
        return execFileSync(cmd, args, { encoding: 'utf8' });
      } catch (e) {
        return String((e as { stdout?: string }).stdout ?? ''); // mosquitto -h exits 3
      }
    };
    expect(output('nats-server', ['--version'])).toContain(`v${v.nats_server}`);
    expect(output('/usr/sbin/mosquitto', ['-h'])).toContain(`mosquitto version ${v.mosquitto}`);
    expect(output(`${postgresBinDir()}/postgres`, ['--version'])).toContain(` ${v.postgres}`);
    expect(v.timescaledb).toBeUndefined();
  });
});
