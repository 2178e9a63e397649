import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEVICE_REGISTRY_BUCKET, deviceKeyHash, JWKS_PATH, newDeviceKey } from '@iot/contracts';
import { connectNats, putDeviceRecords } from '@iot/messaging';
import { createLogger } from '@iot/observability';
import { runMigrations } from '@iot/persistence';
import {
  portOr,
  spawnManaged,
  spawnService,
  startMosquitto,
  startNats,
  startPostgres,
  waitReady,
  which,
  type ManagedProcess,
  type MosquittoHandle,
  type NatsHandle,
  type PostgresHandle,
  type ServiceProcess,
} from '@iot/testing';
import { DEMO_MODEL, DEMO_TENANT, IDLE_DEVICES, SERVICES, SIMULATED_DEVICES } from './services';

export interface PlatformState {
  supervisorPid: number;
  startedAt: string;
  servers: {
    nats: string;
    nats_monitor: string;
    postgres: string;
    mqtt: string;
    mqtts: string;
    prometheus: string;
  };
  services: Array<{ name: string; url: string; pid: number | undefined; log: string }>;
  certs: string;
  logs: string;
}

const say = (msg: string) => process.stdout.write(`==> ${msg}\n`);

export const LOCAL_ADMIN_EMAIL = 'admin@iot.local';

/** Everything `./platform up` runs, started in order and stopped in reverse. */
export class LocalPlatform {
  private nats?: NatsHandle;
  private pg?: PostgresHandle;
  private mqtt?: MosquittoHandle;
  private prometheus?: ManagedProcess;
  private simulator?: ManagedProcess;
  private readonly services: Array<ServiceProcess & { log: string }> = [];

  constructor(
    private readonly root: string,
    private readonly stateDir: string,
  ) {}

  get stateFile(): string {
    return join(this.stateDir, 'platform.json');
  }

  async start(opts: { simulatorRate: number }): Promise<PlatformState> {
    const logs = join(this.stateDir, 'logs');
    mkdirSync(logs, { recursive: true });
    say('starting nats-server (JetStream), PostgreSQL and mosquitto under ' + this.stateDir);
    [this.nats, this.pg, this.mqtt] = await Promise.all([
      startNats({ dir: join(this.stateDir, 'nats'), clientPort: 4222, monitorPort: 8222 }),
      startPostgres({ dir: join(this.stateDir, 'postgres'), port: 5432 }),
      startMosquitto({ dir: join(this.stateDir, 'mosquitto'), port: 1883, tls: true, tlsPort: 8883 }),
    ]);
    const certs = this.mqtt.pki!.dir;
    this.mqtt.pki!.issueClient('demo-0001');

    say('applying database migrations');
    const applied = await runMigrations(this.pg.url);
    say(applied.length ? `applied ${applied.join(', ')}` : 'schema is up to date');

    say(
      `seeding tenant "${DEMO_TENANT}": devices demo-0001..demo-${String(SIMULATED_DEVICES + IDLE_DEVICES).padStart(4, '0')}`,
    );
    const nc = await connectNats({
      servers: this.nats.urls,
      name: 'platform-seed',
      logger: createLogger('platform', 'silent'),
    });
    // A device key for the first idle device, to try HTTP ingest with (POST /v1/telemetry).
    const httpDevice = `demo-${String(SIMULATED_DEVICES + 1).padStart(4, '0')}`;
    const httpKey = newDeviceKey();
    writeFileSync(join(certs, `${httpDevice}.device-key`), httpKey + '\n', { mode: 0o600 });
    await putDeviceRecords(
      nc,
      DEVICE_REGISTRY_BUCKET,
      Array.from({ length: SIMULATED_DEVICES + IDLE_DEVICES }, (_, i) => {
        const device = `demo-${String(i + 1).padStart(4, '0')}`;
        return {
          device,
          tenant: DEMO_TENANT,
          model: DEMO_MODEL,
          state: 'active',
          ...(device === httpDevice ? { key_hashes: [deviceKeyHash(httpKey)] } : {}),
        };
      }),
    );
    say(`device key of ${httpDevice} for HTTP ingest: ${join(certs, `${httpDevice}.device-key`)}`);
    await nc.close();

    say('starting the nine services');
    const ports = new Map<string, number>();
    for (const s of SERVICES) ports.set(s.name, await portOr(s.port));
    const admin = this.platformAdmin();
    for (const s of SERVICES) {
      const port = ports.get(s.name)!;
      const log = join(logs, `${s.name}.log`);
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        NATS_URL: this.nats.url,
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
        // Every service checks access tokens with the keys the local auth service publishes.
        AUTH_JWKS_URL: `http://127.0.0.1:${ports.get('auth')}${JWKS_PATH}`,
        ...(s.name === 'auth'
          ? { AUTH_BOOTSTRAP_ADMIN_EMAIL: admin.email, AUTH_BOOTSTRAP_ADMIN_PASSWORD: admin.password }
          : {}),
        ...(s.needs.includes('database') ? { DATABASE_URL: this.pg.url } : {}),
        // One bridge on mosquitto: plain subscriptions, which mosquitto 2.0 keeps across its
        // own restart (shared ones it does not; docs/reliability.md).
        ...(s.needs.includes('mqtt')
          ? {
              MQTT_URL: this.mqtt.url,
              MQTT_CLIENT_ID: 'mqtt-bridge-local',
              MQTT_SHARE_GROUP: '',
              MQTT_CONNECTIONS: '1',
            }
          : {}),
      };
      this.services.push({
        ...spawnService({ root: this.root, name: s.name, port, env, logFile: log }),
        log,
      });
    }
    for (const s of this.services) await waitReady(s, 120_000);
    await this.seedDemoTenant(`http://127.0.0.1:${ports.get('auth')}`, admin);
    say(
      `platform admin: ${admin.email}, password in ${admin.file} (sign in to "_platform" or "${DEMO_TENANT}")`,
    );

    const prometheusUrl = await this.startPrometheus();

    if (opts.simulatorRate > 0) {
      say(`starting the device simulator: ${SIMULATED_DEVICES} devices, ${opts.simulatorRate} msg/s in all`);
      this.simulator = spawnManaged({
        name: 'simulator',
        cmd: process.execPath,
        args: [
          join(this.root, 'dist', 'tools', 'simulator', 'src', 'main.js'),
          '--url',
          this.mqtt.url,
          '--devices',
          String(SIMULATED_DEVICES),
          '--rate',
          String(opts.simulatorRate),
          '--model',
          DEMO_MODEL,
        ],
        logFile: join(logs, 'simulator.log'),
        cwd: this.root,
      });
    }

    const state: PlatformState = {
      supervisorPid: process.pid,
      startedAt: new Date().toISOString(),
      servers: {
        nats: this.nats.url,
        nats_monitor: this.nats.monitorUrl,
        postgres: this.pg.url,
        mqtt: this.mqtt.url,
        mqtts: this.mqtt.mqttsUrl!,
        prometheus: prometheusUrl,
      },
      services: this.services.map((s) => ({ name: s.name, url: s.url, pid: s.process.pid, log: s.log })),
      certs,
      logs,
    };
    writeFileSync(this.stateFile, JSON.stringify(state, null, 2));
    return state;
  }

  /** The local platform admin: its password is made once and kept in the state directory. */
  private platformAdmin(): { email: string; password: string; file: string } {
    const file = join(this.stateDir, 'admin-password');
    if (!existsSync(file)) writeFileSync(file, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
    return { email: LOCAL_ADMIN_EMAIL, password: readFileSync(file, 'utf8').trim(), file };
  }

  /** The demo tenant exists in auth as it does in the registry, so its people can sign in to it. */
  private async seedDemoTenant(authUrl: string, admin: { email: string; password: string }): Promise<void> {
    const post = (path: string, body: object, token?: string) =>
      fetch(`${authUrl}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify(body),
      });
    const signIn = await post('/v1/auth/sign-in', {
      email: admin.email,
      password: admin.password,
      tenant: '_platform',
    });
    if (!signIn.ok)
      throw new Error(`the local platform admin could not sign in: ${signIn.status} ${await signIn.text()}`);
    const { access_token } = (await signIn.json()) as { access_token: string };
    const created = await post('/v1/tenants', { id: DEMO_TENANT, name: 'Demo farm' }, access_token);
    if (!created.ok && created.status !== 409)
      throw new Error(
        `tenant ${DEMO_TENANT} could not be created: ${created.status} ${await created.text()}`,
      );
  }

  private async startPrometheus(): Promise<string> {
    const bin = which('prometheus');
    if (!bin) {
      say('prometheus not found: skipping it (install the Debian package prometheus)');
      return '';
    }
    const dir = join(this.stateDir, 'prometheus');
    mkdirSync(dir, { recursive: true });
    const port = await portOr(9090);
    const rulesDir = join(this.root, 'deploy', 'prometheus', 'rules');
    const rules = existsSync(rulesDir)
      ? readdirSync(rulesDir)
          .filter((f) => f.endsWith('.yml'))
          .map((f) => join(rulesDir, f))
      : [];
    const targets = this.services.map((s) => `'${new URL(s.url).host}'`).join(', ');
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 5s, evaluation_interval: 15s }',
        rules.length ? `rule_files: [${rules.map((r) => `'${r}'`).join(', ')}]` : '',
        'scrape_configs:',
        "  - job_name: 'iot-services'",
        `    static_configs: [{ targets: [${targets}] }]`,
        // nats-server's own monitoring (/varz, /jsz) is JSON; scraping it needs
        // prometheus-nats-exporter, which compose and k8s run and Debian does not package.
      ].join('\n'),
    );
    this.prometheus = spawnManaged({
      name: 'prometheus',
      cmd: bin,
      args: [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      logFile: join(this.stateDir, 'logs', 'prometheus.log'),
    });
    return `http://127.0.0.1:${port}`;
  }

  /** Stops in reverse order: devices, services (each drains), then the servers. */
  async stop(): Promise<void> {
    await this.simulator?.stop();
    for (const s of [...this.services].reverse()) await s.process.stop(30_000);
    await this.prometheus?.stop();
    await Promise.all([this.mqtt?.stop(), this.nats?.stop(), this.pg?.stop()]);
    rmSync(this.stateFile, { force: true });
  }
}

export function readState(stateDir: string): PlatformState | undefined {
  const file = join(stateDir, 'platform.json');
  if (!existsSync(file)) return undefined;
  const state = JSON.parse(readFileSync(file, 'utf8')) as PlatformState;
  try {
    process.kill(state.supervisorPid, 0);
    return state;
  } catch {
    return undefined; // left behind by a run that died
  }
}

export async function healthOf(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_500) })).ok;
  } catch {
    return false;
  }
}

export function tail(file: string): void {
  spawnSync('tail', ['-n', '200', '-F', file], { stdio: 'inherit' });
}
