import { Module } from '@nestjs/common';
import type { Pool } from 'pg';
import { Gauge } from 'prom-client';
import {
  AccountService,
  CrlPublisher,
  DEFAULT_ACCOUNT_SETTINGS,
  DeviceCa,
  DeviceService,
  RegistryOutbox,
  SigningKeyRing,
} from '@iot/auth-data-access';
import { SubjectFilters, type DeviceRecord } from '@iot/contracts';
import { DeviceDirectory, deviceRegistryView, type KvView } from '@iot/messaging';
import { openPool } from '@iot/pg-pool';
import { runService, type ServiceDefinition } from '@iot/service-runtime';
import { JwksController, KEYS, SessionController, TenantsController } from './auth.controllers';
import { BROKER_HOOKS, BrokerHooksController } from './broker-hooks.controller';
import { CRL, DEVICE_CA, DevicesController, DIRECTORY, PkiController } from './devices.controllers';
import { authEnv } from './env';

let pool: Pool | undefined;
let keys: SigningKeyRing | undefined;
let registry: KvView<DeviceRecord> | undefined;
let outbox: RegistryOutbox | undefined;
let crl: CrlPublisher | undefined;

/**
 * People and sessions: tenants, users with roles, invitations, password resets, sign-in
 * with lockout, ES256 access tokens from rotating keys published as a JWKS, refresh tokens
 * rotated with reuse detection, the audit log. Devices: the registry (published to NATS
 * through an outbox), device keys, the device CA (enrolment, renewal, revocation, the CRL)
 * and EMQX's authentication and authorisation hooks.
 */
export const auth: ServiceDefinition<typeof authEnv> = {
  name: 'auth',
  description:
    'Users, tenants, roles, sessions and the JWKS every service verifies tokens with; the device registry, device keys, the device CA and the broker hooks.',
  env: authEnv,
  consumes: false,
  module: async (env, runtime) => {
    // Connections kept through lulls: a sign-in after a quiet night does not wait for a backend.
    pool = openPool(env.DATABASE_URL, { max: env.DB_POOL_SIZE, name: 'auth' }, (e) =>
      runtime.logger.warn({ err: String(e) }, 'idle database connection failed'),
    );
    const kek = env.AUTH_KEY_ENCRYPTION_KEY ? Buffer.from(env.AUTH_KEY_ENCRYPTION_KEY, 'base64') : undefined;
    if (kek && kek.length !== 32)
      throw new Error(
        `AUTH_KEY_ENCRYPTION_KEY is ${kek.length} bytes once base64-decoded; it must be 32 (openssl rand -base64 32)`,
      );
    keys = new SigningKeyRing(pool, {
      rotationMs: env.AUTH_KEY_ROTATION_H * 3_600_000,
      // A replaced key stays published while tokens it signed live, and a little longer for clocks.
      graceMs: (env.AUTH_ACCESS_TTL_S + 300) * 1000,
      keyEncryptionKey: kek,
      logger: runtime.logger,
    });
    await keys.start();
    // This service checks tokens with its own keys, not over HTTP to itself.
    runtime.accessTokens.useKeys(keys.getKey, 'the auth service’s key ring');
    const accounts = new AccountService(pool, keys, {
      ...DEFAULT_ACCOUNT_SETTINGS,
      issuer: env.AUTH_ISSUER,
      audience: env.AUTH_AUDIENCE,
      accessTtlS: env.AUTH_ACCESS_TTL_S,
      refreshTtlS: env.AUTH_REFRESH_TTL_S,
      accountAttempts: env.AUTH_SIGN_IN_ATTEMPTS,
      addressAttempts: env.AUTH_SIGN_IN_ADDRESS_ATTEMPTS,
      lockS: env.AUTH_LOCK_S,
    });
    if (env.AUTH_BOOTSTRAP_ADMIN_EMAIL && env.AUTH_BOOTSTRAP_ADMIN_PASSWORD) {
      if (
        await accounts.ensurePlatformAdmin(env.AUTH_BOOTSTRAP_ADMIN_EMAIL, env.AUTH_BOOTSTRAP_ADMIN_PASSWORD)
      )
        runtime.logger.info({ email: env.AUTH_BOOTSTRAP_ADMIN_EMAIL }, 'platform admin created');
    }
    runtime.readiness.add('database', async () => (await pool!.query('SELECT 1')).rowCount === 1);

    // Devices: the registry view this service answers the broker from, and writes through.
    registry = deviceRegistryView(runtime.nc, runtime.logger, env.NATS_STREAM_REPLICAS);
    await registry.start();
    const directory = new DeviceDirectory(registry);
    runtime.readiness.add('device-registry', () => registry!.ready);
    const view = registry;
    outbox = new RegistryOutbox(
      pool,
      { put: (d, r) => view.put(d, r as DeviceRecord), remove: (d) => view.remove(d) },
      runtime.logger,
    );
    const ca = env.DEVICE_CA_CERT_FILE
      ? await DeviceCa.load(
          {
            certFile: env.DEVICE_CA_CERT_FILE,
            keyFile: env.DEVICE_CA_KEY_FILE,
            chainFile: env.DEVICE_CA_CHAIN_FILE || undefined,
          },
          {
            validityDays: env.DEVICE_CERT_VALIDITY_DAYS,
            crlValidityH: env.DEVICE_CRL_VALIDITY_H,
            crlUrl: env.DEVICE_CRL_URL || undefined,
          },
        )
      : undefined;
    if (!ca)
      runtime.logger.warn({}, 'no device CA (DEVICE_CA_CERT_FILE): enrolment and certificates are off');
    const devices = new DeviceService(
      pool,
      accounts,
      ca,
      { registryChanged: () => outbox?.kick(), crlChanged: () => crl?.changed() },
      { bootstrapTtlS: env.DEVICE_BOOTSTRAP_TTL_S, maxKeysPerDevice: 16 },
    );
    outbox.start();
    if (ca) {
      crl = new CrlPublisher(
        ca,
        () => devices.crlEntries(),
        runtime.logger,
        env.DEVICE_CRL_FILE || undefined,
        (env.DEVICE_CRL_VALIDITY_H * 3_600_000) / 3,
      );
      await crl.start();
    }
    registerDeviceMetrics(
      runtime.metrics.registry,
      devices,
      ca,
      () => crl,
      () => outbox,
    );
    // The bridge tells of device keys used for HTTP ingest: note their last use (one replica each).
    runtime.nc.subscribe(SubjectFilters.deviceKeyUsed, {
      queue: 'auth',
      callback: (err, msg) => {
        if (err) return;
        const tenant = msg.subject.split('.')[4];
        let hash: unknown;
        try {
          hash = (msg.json() as { key_hash?: unknown }).key_hash;
        } catch {
          return;
        }
        if (!tenant || typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) return;
        devices
          .touchKeyHash(tenant, hash)
          .catch((e) => runtime.logger.warn({ err: String(e) }, 'could not note device key use'));
      },
    });

    @Module({
      controllers: [
        JwksController,
        SessionController,
        TenantsController,
        DevicesController,
        PkiController,
        BrokerHooksController,
      ],
      providers: [
        { provide: AccountService, useValue: accounts },
        { provide: KEYS, useValue: keys },
        { provide: DeviceService, useValue: devices },
        { provide: DIRECTORY, useValue: directory },
        { provide: DEVICE_CA, useValue: ca },
        { provide: CRL, useValue: crl },
        {
          provide: BROKER_HOOKS,
          useValue: {
            secret: env.EMQX_HOOK_SECRET,
            bridgeUsername: env.MQTT_BRIDGE_USERNAME,
            bridgePassword: env.MQTT_BRIDGE_PASSWORD,
          },
        },
      ],
    })
    class AuthModule {}
    return AuthModule;
  },
  onShutdown: async () => {
    keys?.stop();
    crl?.stop();
    await outbox?.stop();
    registry?.stop();
    await pool?.end();
  },
};

/** Certificate expiry and the state of the CRL and the registry outbox, read at each scrape. */
function registerDeviceMetrics(
  registry: import('prom-client').Registry,
  devices: DeviceService,
  ca: DeviceCa | undefined,
  crlOf: () => CrlPublisher | undefined,
  outboxOf: () => RegistryOutbox | undefined,
): void {
  const registers = [registry];
  const active = new Gauge({
    name: 'iot_device_certificates_active',
    help: 'Devices with a valid, unrevoked certificate (their newest one), per tenant',
    labelNames: ['tenant'],
    registers,
  });
  const expiring = new Gauge({
    name: 'iot_device_certificates_expiring',
    help: 'Of those, certificates that expire within 30 days, per tenant',
    labelNames: ['tenant'],
    registers,
  });
  new Gauge({
    name: 'iot_device_certificate_expiry_seconds',
    help: "Seconds until the soonest-expiring device certificate of the tenant expires (each device's newest)",
    labelNames: ['tenant'],
    registers,
    async collect() {
      this.reset();
      active.reset();
      expiring.reset();
      for (const t of await devices.certificateExpiry()) {
        active.set({ tenant: t.tenant }, t.active);
        expiring.set({ tenant: t.tenant }, t.expiring);
        if (t.soonest) this.set({ tenant: t.tenant }, (t.soonest.getTime() - Date.now()) / 1000);
      }
    },
  });
  new Gauge({
    name: 'iot_device_ca_expiry_seconds',
    help: 'Seconds until the device CA certificate expires',
    registers,
    collect() {
      if (ca) this.set((ca.notAfter.getTime() - Date.now()) / 1000);
    },
  });
  new Gauge({
    name: 'iot_device_crl_next_update_seconds',
    help: 'Seconds until the current CRL expires (the broker refuses every certificate after that)',
    registers,
    collect() {
      const c = crlOf()?.crl;
      if (c) this.set((c.nextUpdate.getTime() - Date.now()) / 1000);
    },
  });
  new Gauge({
    name: 'iot_device_registry_outbox_backlog',
    help: 'Registry changes not yet published to NATS (as of the last publish run)',
    registers,
    collect() {
      this.set(outboxOf()?.backlog ?? 0);
    },
  });
}

if (require.main === module) runService(auth);
