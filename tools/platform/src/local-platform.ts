import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JWKS_PATH } from '@iot/contracts';
import { runMigrations } from '@iot/persistence';
import {
  portOr,
  sharedMachineGoMaxProcs,
  spawnManaged,
  spawnService,
  startMosquitto,
  startNats,
  startPostgres,
  startTogether,
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
    [this.nats, this.pg, this.mqtt] = await startTogether(
      startNats({
        dir: join(this.stateDir, 'nats'),
        clientPort: 4222,
        monitorPort: 8222,
        // The whole platform shares this machine: fewer Go threads cost less (libs/testing).
        goMaxProcs: sharedMachineGoMaxProcs(),
      }),
      startPostgres({ dir: join(this.stateDir, 'postgres'), port: 5432 }),
      // The device topic policy on both listeners; the bridge signs in with its service account.
      startMosquitto({
        dir: join(this.stateDir, 'mosquitto'),
        port: 1883,
        tls: true,
        tlsPort: 8883,
        acl: true,
      }),
    );
    const pki = this.mqtt.pki!;
    const certs = pki.dir;
    const bridgeAccount = this.mqtt.bridgeAccount!;

    say('applying database migrations');
    const applied = await runMigrations(this.pg.url);
    say(applied.length ? `applied ${applied.join(', ')}` : 'schema is up to date');

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
          ? {
              AUTH_BOOTSTRAP_ADMIN_EMAIL: admin.email,
              AUTH_BOOTSTRAP_ADMIN_PASSWORD: admin.password,
              // The local device CA (an intermediate under the local root) issues device
              // certificates; its CRL goes where mosquitto reads it.
              DEVICE_CA_CERT_FILE: pki.deviceCaCert,
              DEVICE_CA_KEY_FILE: pki.deviceCaKey,
              DEVICE_CA_CHAIN_FILE: pki.caCert,
              DEVICE_CRL_FILE: pki.crlFile,
              DEVICE_CRL_URL: `http://127.0.0.1:${ports.get('auth')}/v1/pki/crl`,
              MQTT_BRIDGE_USERNAME: bridgeAccount.username,
              MQTT_BRIDGE_PASSWORD: bridgeAccount.password,
            }
          : {}),
        ...(s.needs.includes('database') ? { DATABASE_URL: this.pg.url } : {}),
        // One box: demux normalizes, one JetStream hop less (docs/adr/0006-normalize-in-demux.md).
        ...(s.name === 'demux' ? { NORMALIZE_IN_DEMUX: process.env.NORMALIZE_IN_DEMUX ?? 'true' } : {}),
        // One bridge on mosquitto: plain subscriptions, which mosquitto 2.0 keeps across its
        // own restart (shared ones it does not; docs/reliability.md). Its one connection takes
        // the window of the default four (4 x 32 in flight); measured, one connection of 128
        // costs what four of 32 do (docs/performance-history.md, 2026-12-05 11:00).
        ...(s.needs.includes('mqtt')
          ? {
              MQTT_URL: this.mqtt.url,
              MQTT_USERNAME: bridgeAccount.username,
              MQTT_PASSWORD: bridgeAccount.password,
              MQTT_CLIENT_ID: 'mqtt-bridge-local',
              MQTT_SHARE_GROUP: '',
              MQTT_CONNECTIONS: '1',
              MQTT_WINDOW: '128',
            }
          : {}),
      };
      this.services.push({
        ...spawnService({ root: this.root, name: s.name, port, env, logFile: log }),
        log,
      });
    }
    for (const s of this.services) await waitReady(s, 120_000);
    await this.seedDemoTenant(`http://127.0.0.1:${ports.get('auth')}`, admin, certs);
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

  /**
   * The local profile, registered through the auth service as an operator would: tenant
   * `demo`, its devices (published to the registry the bridge reads), a device key for the
   * first idle device (HTTP ingest) and a certificate for demo-0001 enrolled with a CSR.
   */
  private async seedDemoTenant(
    authUrl: string,
    admin: { email: string; password: string },
    certs: string,
  ): Promise<void> {
    const call = async (method: string, path: string, body?: object, token?: string) => {
      const res = await fetch(`${authUrl}${path}`, {
        method,
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
    };
    const must = (what: string, r: { status: number; json: Record<string, unknown> }, ok = [200, 201]) => {
      if (!ok.includes(r.status)) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.json)}`);
      return r.json;
    };
    const { access_token: token } = must(
      'the local platform admin could not sign in',
      await call('POST', '/v1/auth/sign-in', {
        email: admin.email,
        password: admin.password,
        tenant: '_platform',
      }),
    ) as { access_token: string };
    must(
      `tenant ${DEMO_TENANT} could not be created`,
      await call('POST', '/v1/tenants', { id: DEMO_TENANT, name: 'Demo farm' }, token),
      [201, 409],
    );
    const total = SIMULATED_DEVICES + IDLE_DEVICES;
    say(`registering devices demo-0001..demo-${String(total).padStart(4, '0')} in tenant "${DEMO_TENANT}"`);
    const devices = `/v1/tenants/${DEMO_TENANT}/devices`;
    for (let i = 1; i <= total; i++) {
      const id = `demo-${String(i).padStart(4, '0')}`;
      must(
        `device ${id}`,
        await call('POST', devices, { id, model: DEMO_MODEL, name: `Demo device ${i}` }, token),
        [201, 409],
      );
    }
    // A device key for the first idle device, to try HTTP ingest with (POST /v1/telemetry).
    const httpDevice = `demo-${String(SIMULATED_DEVICES + 1).padStart(4, '0')}`;
    const keyFile = join(certs, `${httpDevice}.device-key`);
    if (!existsSync(keyFile)) {
      const { key } = must(
        `a key for ${httpDevice}`,
        await call('POST', `${devices}/${httpDevice}/keys`, { name: 'local HTTP ingest' }, token),
      ) as { key: string };
      writeFileSync(keyFile, key + '\n', { mode: 0o600 });
    }
    say(`device key of ${httpDevice} for HTTP ingest: ${keyFile}`);
    // demo-0001 enrols as a real device does: its own key, a CSR, a one-time token.
    const certFile = join(certs, 'demo-0001.crt');
    const issuedHere = () =>
      new X509Certificate(readFileSync(certFile)).checkIssued(
        new X509Certificate(readFileSync(join(certs, 'device-ca.crt'))),
      );
    if (!existsSync(certFile) || !issuedHere()) {
      const keyPath = join(certs, 'demo-0001.key');
      const csr = execFileSync(
        'openssl',
        [
          'req',
          '-new',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-keyout',
          keyPath,
          '-subj',
          '/CN=demo-0001',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ).toString();
      const { token: bootstrap } = must(
        'a bootstrap token for demo-0001',
        await call('POST', `${devices}/demo-0001/bootstrap-tokens`, {}, token),
      ) as { token: string };
      const { certificate } = must(
        'enrolling demo-0001',
        await call('POST', '/v1/pki/enrol', { token: bootstrap, csr }),
      ) as { certificate: string };
      writeFileSync(certFile, certificate);
    }
    say(
      `demo-0001's certificate (issued by the device CA): ${certFile}, key beside it, CA: ${join(certs, 'ca.crt')}`,
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
