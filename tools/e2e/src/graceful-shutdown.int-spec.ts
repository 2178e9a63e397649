import { join } from 'node:path';
import {
  freePort,
  removeDir,
  spawnManaged,
  startMosquitto,
  startNats,
  startPostgres,
  tempDir,
  waitFor,
} from '@iot/testing';
import { runMigrations } from '@iot/persistence';
import { buildOnce, ROOT } from './pipeline';

const SERVICES = [
  'mqtt-bridge',
  'demux',
  'normalizer',
  'tsdb-writer',
  'asset-worker',
  'event-engine',
  'broadcaster',
  'auth',
  'config',
];

describe('every service on SIGTERM', () => {
  it('starts, reports healthy and ready, then drains and exits 0 within its grace period', async () => {
    buildOnce();
    const [nats, pg, mqtt] = await Promise.all([startNats(), startPostgres(), startMosquitto()]);
    const logs = tempDir('shutdown-logs');
    try {
      await runMigrations(pg.url);
      const results: Record<string, unknown> = {};
      for (const name of SERVICES) {
        const port = await freePort();
        const proc = spawnManaged({
          name,
          cmd: process.execPath,
          args: [join(ROOT, 'dist', 'apps', name, 'src', 'main.js')],
          logFile: join(logs, `${name}.log`),
          cwd: ROOT,
          env: {
            ...process.env,
            NATS_URL: nats.url,
            HTTP_PORT: String(port),
            DATABASE_URL: pg.url,
            MQTT_URL: mqtt.url,
            MQTT_CLIENT_ID: 'shutdown-test',
            SHUTDOWN_GRACE_MS: '15000',
            LOG_LEVEL: 'warn',
          },
        });
        const url = `http://127.0.0.1:${port}`;
        await waitFor(
          `${name} to be ready`,
          async () => (await fetch(`${url}/readyz`)).ok,
          60_000,
          proc.logFile,
        );
        const health = await fetch(`${url}/healthz`);
        proc.signal('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const code = await Promise.race([
          proc.exited(),
          new Promise((r) => (timer = setTimeout(() => r('still running after 20 s'), 20_000))),
        ]);
        clearTimeout(timer);
        results[name] = { healthz: health.status, exit: code };
        await proc.stop();
      }
      expect(results).toEqual(Object.fromEntries(SERVICES.map((s) => [s, { healthz: 200, exit: 0 }])));
    } finally {
      await Promise.all([nats.stop(), pg.stop(), mqtt.stop()]);
      removeDir(logs);
    }
  });
});
