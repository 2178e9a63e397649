import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  freePort,
  removeDir,
  spawnService,
  startMosquitto,
  startNats,
  startPostgres,
  tempDir,
  waitReady,
  startTogether,
} from '@iot/testing';
import { runMigrations } from '@iot/persistence';
import { buildOnce, ROOT } from './pipeline';

/** Every service of the repository, so that a new one cannot be left out of this test. */
const SERVICES = readdirSync(join(ROOT, 'apps'), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

describe('every service on SIGTERM', () => {
  it('starts, reports healthy and ready, then drains and exits 0 within its grace period', async () => {
    expect(SERVICES).toEqual(
      expect.arrayContaining(['mqtt-bridge', 'demux', 'tsdb-writer', 'auth', 'config']),
    );
    buildOnce();
    const [nats, pg, mqtt] = await startTogether(startNats(), startPostgres(), startMosquitto());
    const logs = tempDir('shutdown-logs');
    try {
      await runMigrations(pg.url);
      const results: Record<string, unknown> = {};
      for (const name of SERVICES) {
        const svc = spawnService({
          root: ROOT,
          name,
          port: await freePort(),
          logFile: join(logs, `${name}.log`),
          env: {
            ...process.env,
            NATS_URL: nats.url,
            DATABASE_URL: pg.url,
            MQTT_URL: mqtt.url,
            MQTT_CLIENT_ID: 'shutdown-test',
            SHUTDOWN_GRACE_MS: '15000',
            LOG_LEVEL: 'warn',
          },
        });
        const proc = svc.process;
        await waitReady(svc);
        const health = await fetch(`${svc.url}/healthz`);
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
