// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { execFileSync, spawn } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, webcrypto } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DEVICE_REGISTRY_BUCKET, JWKS_PATH, Streams } from '@iot/contracts';
import { runMigrations } from '@iot/persistence';
import {
  freePort,
  removeDir,
  spawnService,
  startMosquitto,
  startNats,
  startPostgres,
  tempDir,
  waitFor,
  waitReady,
  type MosquittoHandle,
  type NatsHandle,
  type PostgresHandle,
  type ServiceProcess,
  startTogether,
} from '@iot/testing';
import { buildOnce, ROOT } from './pipeline';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ADMIN = { email: 'root@platform.example', password: 'bootstrap passphrase 1' };
const HOOK_SECRET = 'emqx-hook-secret-for-tests';

/**
 * Devices as the broker sees them: registered through the auth service, enrolled with a
 * CSR and a one-time token, connecting to mosquitto over mTLS with the certificate the
 * platform's device CA issued, confined to their own topics, and refused once revoked.
 * Real mosquitto, real mosquitto_pub/mosquitto_sub and openssl, real auth and bridge.
 */
describe('device identity: registry, enrolment, mTLS, topic ACL and revocation', () => {
  let nats: NatsHandle;
  let pg: PostgresHandle;
  let mqtt: MosquittoHandle;
  let nc: NatsConnection;
  let logs: string;
  let work: string;
  let auth: ServiceProcess;
  let bridge: ServiceProcess;
  let admin: string;

  const api = async (method: string, path: string, body?: unknown, token: string | undefined = admin) => {
    const res = await fetch(`${auth.url}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      /* not JSON */
    }
    return { status: res.status, json, text };
  };

  /** A new EC P-256 key and a CSR for it, made with openssl as a device's provisioning script would. */
  const keyAndCsr = (name: string, cn = name) => {
    const key = join(work, `${name}.key`);
    const csr = join(work, `${name}.csr`);
    execFileSync(
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
        key,
        '-out',
        csr,
        '-subj',
        `/CN=${cn}`,
      ],
      { stdio: 'pipe' },
    );
    return { key, csr: readFileSync(csr, 'utf8') };
  };

  const tls = () => ['-h', '127.0.0.1', '-p', new URL(mqtt.mqttsUrl!).port, '--cafile', mqtt.pki!.caCert];

  /** mosquitto_pub over mTLS; resolves with its exit code (0: connected and published). */
  const publishAs = (cert: string | undefined, key: string | undefined, topic: string, message: string) => {
    const args = [
      ...tls(),
      ...(cert ? ['--cert', cert, '--key', key!] : []),
      '-q',
      '1',
      '-t',
      topic,
      '-m',
      message,
    ];
    try {
      execFileSync('mosquitto_pub', args, { stdio: 'pipe', timeout: 10_000 });
      return 0;
    } catch (e) {
      return (e as { status?: number }).status ?? -1;
    }
  };

  const rawSubjects = async () => {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(Streams.TELEMETRY_RAW_V1.name, { subjects_filter: '>' });
    return info.state.subjects ?? {};
  };

  const registryHas = async (device: string) => {
    const kv = await new Kvm(nc).open(DEVICE_REGISTRY_BUCKET);
    const e = await kv.get(device);
    return e?.operation === 'PUT' ? e.json<{ state: string; key_hashes: string[] }>() : undefined;
  };

  beforeAll(async () => {
    buildOnce();
    [nats, pg, mqtt] = await startTogether(
      startNats(),
      startPostgres(),
      startMosquitto({ tls: true, acl: true }),
    );
    nc = await connect({ servers: nats.url });
    logs = tempDir('device-identity-logs');
    work = tempDir('device-identity');
    await runMigrations(pg.url);
    const pki = mqtt.pki!;
    writeFileSync(join(work, 'chain.crt'), readFileSync(pki.caCert));
    const authPort = await freePort();
    const common = {
      ...process.env,
      NATS_URL: nats.url,
      LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'warn',
      SHUTDOWN_GRACE_MS: '5000',
      AUTH_JWKS_URL: `http://127.0.0.1:${authPort}${JWKS_PATH}`,
    };
    auth = spawnService({
      root: ROOT,
      name: 'auth',
      port: authPort,
      logFile: join(logs, 'auth.log'),
      env: {
        ...common,
        DATABASE_URL: pg.url,
        AUTH_BOOTSTRAP_ADMIN_EMAIL: ADMIN.email,
        AUTH_BOOTSTRAP_ADMIN_PASSWORD: ADMIN.password,
        DEVICE_CA_CERT_FILE: pki.deviceCaCert,
        DEVICE_CA_KEY_FILE: pki.deviceCaKey,
        DEVICE_CA_CHAIN_FILE: join(work, 'chain.crt'),
        DEVICE_CRL_FILE: pki.crlFile,
        DEVICE_CRL_URL: `http://127.0.0.1:${authPort}/v1/pki/crl`,
        EMQX_HOOK_SECRET: HOOK_SECRET,
        MQTT_BRIDGE_USERNAME: mqtt.bridgeAccount!.username,
        MQTT_BRIDGE_PASSWORD: mqtt.bridgeAccount!.password,
      },
    });
    bridge = spawnService({
      root: ROOT,
      name: 'mqtt-bridge',
      port: await freePort(),
      logFile: join(logs, 'mqtt-bridge.log'),
      env: {
        ...common,
        MQTT_URL: mqtt.url,
        MQTT_CLIENT_ID: 'identity-bridge',
        MQTT_USERNAME: mqtt.bridgeAccount!.username,
        MQTT_PASSWORD: mqtt.bridgeAccount!.password,
      },
    });
    await waitReady(auth);
    await waitReady(bridge);
    const signIn = await api('POST', '/v1/auth/sign-in', { ...ADMIN, tenant: '_platform' }, undefined);
    expect(signIn.status).toBe(200);
    admin = signIn.json.access_token as string;
    expect((await api('POST', '/v1/tenants', { id: 'acme', name: 'Acme' })).status).toBe(201);
    for (const id of ['dev-a', 'dev-b'])
      expect((await api('POST', '/v1/tenants/acme/devices', { id, model: 'zenthos-esp32' })).status).toBe(
        201,
      );
  }, 120_000);

  afterAll(async () => {
    await nc?.close();
    for (const s of [bridge, auth]) await s?.process.stop(10_000);
    await Promise.all([nats?.stop(), pg?.stop(), mqtt?.stop()]);
    if (process.env.E2E_KEEP_LOGS) process.stderr.write(`logs kept in ${logs}\n`);
    else removeDir(logs);
    removeDir(work);
  });

  const certs: Record<string, { cert: string; key: string; serial: string }> = {};

  const enrol = async (device: string) => {
    const t = await api('POST', `/v1/tenants/acme/devices/${device}/bootstrap-tokens`, {});
    expect(t.status).toBe(201);
    const { key, csr } = keyAndCsr(device, 'ignored-cn');
    const r = await api('POST', '/v1/pki/enrol', { token: t.json.token, csr }, undefined);
    expect(r.status).toBe(201);
    const cert = join(work, `${device}.crt`);
    writeFileSync(cert, r.json.certificate as string);
    certs[device] = { cert, key, serial: r.json.serial as string };
    return { token: t.json.token as string, answer: r.json };
  };

  it('registers devices and publishes them to the registry every service reads', async () => {
    await waitFor(
      'dev-a and dev-b in the registry',
      async () => !!(await registryHas('dev-a')) && !!(await registryHas('dev-b')),
      10_000,
    );
    expect(await registryHas('dev-a')).toMatchObject({ state: 'active', key_hashes: [] });
    const list = await api('GET', '/v1/tenants/acme/devices');
    expect((list.json.devices as Array<{ id: string }>).map((d) => d.id)).toEqual(['dev-a', 'dev-b']);
    const dup = await api('POST', '/v1/tenants/acme/devices', { id: 'dev-a', model: 'x' });
    expect(dup.status).toBe(409);
    const bad = await api('POST', '/v1/tenants/acme/devices', { id: 'a/b', model: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.json.detail).toMatch(/^id must be/);
  });

  it('enrols: a CSR with a valid bootstrap token yields a certificate (CN = device id) that mosquitto accepts', async () => {
    const { answer } = await enrol('dev-a');
    const cert = new x509.X509Certificate(answer.certificate as string);
    expect(cert.subject).toBe('CN=dev-a');
    expect(answer.chain).toContain('BEGIN CERTIFICATE');
    // openssl agrees the chain holds: device CA under the root.
    const verified = execFileSync('openssl', [
      'verify',
      '-CAfile',
      mqtt.pki!.caCert,
      '-untrusted',
      mqtt.pki!.deviceCaCert,
      certs['dev-a']!.cert,
    ]).toString();
    expect(verified).toContain(': OK');
    await enrol('dev-b');
    expect(publishAs(certs['dev-a']!.cert, certs['dev-a']!.key, 'devices/dev-a/telemetry', '{"m":1}')).toBe(
      0,
    );
    await waitFor(
      'dev-a in the raw stream',
      async () => (await rawSubjects())['iot.raw.v1.acme.dev-a'] === 1,
      10_000,
    );
  });

  it('refuses a used, a wrong and a malformed bootstrap token, and keeps the token when the CSR is bad', async () => {
    const t = await api('POST', '/v1/tenants/acme/devices/dev-b/bootstrap-tokens', {});
    const token = t.json.token as string;
    const { csr } = keyAndCsr('dev-b-again');
    const badCsr = await api('POST', '/v1/pki/enrol', { token, csr: 'not a csr' }, undefined);
    expect(badCsr.status).toBe(400);
    expect(badCsr.json.detail).toMatch(/csr must be a PEM certificate signing request/);
    expect((await api('POST', '/v1/pki/enrol', { token, csr }, undefined)).status).toBe(201);
    const reused = await api('POST', '/v1/pki/enrol', { token, csr }, undefined);
    expect(reused.status).toBe(401);
    expect(reused.json.detail).toMatch(/used already or expired/);
    const wrong = token.replace(/dev_bt_.{4}/, 'dev_bt_AAAA');
    expect((await api('POST', '/v1/pki/enrol', { token: wrong, csr }, undefined)).status).toBe(401);
    expect((await api('POST', '/v1/pki/enrol', { token: 'guess', csr }, undefined)).status).toBe(401);
  });

  it('confines a device to its own topics: what it sends as another never reaches the bridge', async () => {
    const a = certs['dev-a']!;
    for (const topic of [
      'devices/dev-b/telemetry',
      'zenthos/zenthos-esp32/dev-b/telemetry',
      'devices/dev-b/status',
    ])
      expect(publishAs(a.cert, a.key, topic, '{"spoofed":true}')).toBe(0); // QoS 1 is acknowledged, then dropped
    // A marker sent after them arrives: by then the spoofed ones would have too.
    expect(publishAs(a.cert, a.key, 'devices/dev-a/telemetry', '{"m":2}')).toBe(0);
    await waitFor('the marker', async () => (await rawSubjects())['iot.raw.v1.acme.dev-a'] === 2, 10_000);
    const subjects = await rawSubjects();
    expect(Object.keys(subjects).filter((s) => s.endsWith('.dev-b'))).toEqual([]);

    // Subscribing under dev-b's topics yields nothing; its own commands arrive.
    const sub = spawn('mosquitto_sub', [
      ...tls(),
      '--cert',
      a.cert,
      '--key',
      a.key,
      '-t',
      'devices/dev-b/cmd',
      '-t',
      'devices/dev-a/cmd',
      '-v',
      '-W',
      '6',
    ]);
    let out = '';
    sub.stdout.on('data', (d) => (out += d));
    await new Promise((r) => setTimeout(r, 1_000));
    const asBridge = [
      '-h',
      '127.0.0.1',
      '-p',
      String(mqtt.port),
      '-u',
      mqtt.bridgeAccount!.username,
      '-P',
      mqtt.bridgeAccount!.password,
    ];
    execFileSync('mosquitto_pub', [...asBridge, '-t', 'devices/dev-b/cmd', '-m', 'for-b', '-q', '1']);
    execFileSync('mosquitto_pub', [...asBridge, '-t', 'devices/dev-a/cmd', '-m', 'for-a', '-q', '1']);
    await new Promise((r) => sub.once('exit', r));
    expect(out.trim().split('\n')).toEqual(['devices/dev-a/cmd for-a']);

    // On the loopback listener the client id names the device, with the same rules.
    execFileSync('mosquitto_pub', [
      '-h',
      '127.0.0.1',
      '-p',
      String(mqtt.port),
      '-i',
      'dev-b',
      '-t',
      'devices/dev-a/telemetry',
      '-m',
      'x',
      '-q',
      '1',
    ]);
    execFileSync('mosquitto_pub', [
      '-h',
      '127.0.0.1',
      '-p',
      String(mqtt.port),
      '-i',
      'dev-b',
      '-t',
      'devices/dev-b/telemetry',
      '-m',
      '{}',
      '-q',
      '1',
    ]);
    await waitFor(
      'dev-b on the loopback listener',
      async () => (await rawSubjects())['iot.raw.v1.acme.dev-b'] === 1,
      10_000,
    );
    expect((await rawSubjects())['iot.raw.v1.acme.dev-a']).toBe(2);
  });

  it('refuses a certificate from an unknown CA, an expired one, and none', async () => {
    // Another CA, with a certificate for the same, registered device id.
    const rogue = join(work, 'rogue');
    execFileSync('mkdir', ['-p', rogue]);
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(rogue, 'ca.key'),
        '-out',
        join(rogue, 'ca.crt'),
        '-days',
        '30',
        '-subj',
        '/CN=IoT Local Device CA',
      ],
      { stdio: 'pipe' },
    );
    const { key: rogueKey } = keyAndCsr('rogue-dev', 'dev-a');
    execFileSync(
      'openssl',
      [
        'x509',
        '-req',
        '-in',
        join(work, 'rogue-dev.csr'),
        '-CA',
        join(rogue, 'ca.crt'),
        '-CAkey',
        join(rogue, 'ca.key'),
        '-CAcreateserial',
        '-out',
        join(rogue, 'dev-a.crt'),
        '-days',
        '30',
      ],
      { stdio: 'pipe' },
    );
    expect(publishAs(join(rogue, 'dev-a.crt'), rogueKey, 'devices/dev-a/telemetry', 'rogue')).not.toBe(0);

    // Signed by the real device CA, but its validity ended yesterday.
    const ecdsa = { name: 'ECDSA', namedCurve: 'P-256' };
    const caKey = createPrivateKey(readFileSync(mqtt.pki!.deviceCaKey)).toCryptoKey(ecdsa, false, [
      'sign',
    ]) as never;
    const ca = new x509.X509Certificate(readFileSync(mqtt.pki!.deviceCaCert, 'utf8'));
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const expired = await x509.X509CertificateGenerator.create({
      serialNumber: '7e57',
      subject: 'CN=dev-a',
      issuer: ca.subject,
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
      publicKey: publicKey.toCryptoKey(ecdsa, true, ['verify']) as never,
      signingKey: caKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as never,
      extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
    });
    writeFileSync(join(work, 'expired.crt'), expired.toString('pem'));
    writeFileSync(join(work, 'expired.key'), privateKey.export({ format: 'pem', type: 'pkcs8' }));
    expect(
      publishAs(join(work, 'expired.crt'), join(work, 'expired.key'), 'devices/dev-a/telemetry', 'expired'),
    ).not.toBe(0);

    expect(publishAs(undefined, undefined, 'devices/dev-a/telemetry', 'anonymous')).not.toBe(0);
    // And none of them reached the bridge.
    expect((await rawSubjects())['iot.raw.v1.acme.dev-a']).toBe(2);
  });

  it('refuses a revoked certificate once the CRL is refreshed, and serves the CRL over HTTP', async () => {
    const a = certs['dev-a']!;
    const before = readFileSync(mqtt.pki!.crlFile, 'utf8');
    const r = await api('POST', `/v1/tenants/acme/devices/dev-a/certificates/${a.serial}/revoke`, {
      reason: 'keyCompromise',
    });
    expect(r.status).toBe(200);
    await waitFor(
      'the CRL file to change',
      async () => readFileSync(mqtt.pki!.crlFile, 'utf8') !== before,
      10_000,
    );
    // mosquitto re-reads the CRL when its file changes (SIGHUP); the next connection is refused.
    await waitFor(
      'dev-a refused',
      async () => publishAs(a.cert, a.key, 'devices/dev-a/telemetry', '{"m":3}') !== 0,
      15_000,
    );
    // Other devices still connect.
    const b = certs['dev-b']!;
    expect(publishAs(b.cert, b.key, 'devices/dev-b/telemetry', '{"m":1}')).toBe(0);

    const crl = await fetch(`${auth.url}/v1/pki/crl`);
    expect(crl.headers.get('content-type')).toMatch(/application\/pkix-crl/);
    writeFileSync(join(work, 'crl.der'), Buffer.from(await crl.arrayBuffer()));
    const text = crlText(join(work, 'crl.der'), 'DER');
    expect(serialsText(text)).toContain(a.serial);
    expect(text).toContain('Key Compromise');
    const listed = await api('GET', '/v1/tenants/acme/devices/dev-a/certificates');
    expect((listed.json.certificates as Array<{ serial: string; revoked_reason: string }>)[0]).toMatchObject({
      serial: a.serial,
      revoked_reason: 'keyCompromise',
    });
    const audit = await api('GET', '/v1/tenants/acme/audit?action=certificate.revoked');
    expect((audit.json.entries as unknown[]).length).toBe(1);
  });

  it('renews a certificate before it expires, with the same key or a new one', async () => {
    const b = certs['dev-b']!;
    const current = readFileSync(b.cert, 'utf8');
    const csrSameKey = execFileSync('openssl', [
      'req',
      '-new',
      '-key',
      b.key,
      '-subj',
      '/CN=dev-b',
    ]).toString();
    const renewed = await api('POST', '/v1/pki/renew', { certificate: current, csr: csrSameKey }, undefined);
    expect(renewed.status).toBe(201);
    expect(renewed.json.serial).not.toBe(b.serial);
    // A new key needs a signature by the current one.
    const { csr: newKeyCsr } = keyAndCsr('dev-b-next');
    const refused = await api('POST', '/v1/pki/renew', { certificate: current, csr: newKeyCsr }, undefined);
    expect(refused.status).toBe(401);
    expect(refused.json.detail).toMatch(/sign its DER with the current key/);
    // A revoked certificate cannot renew.
    const a = certs['dev-a']!;
    const csrA = execFileSync('openssl', ['req', '-new', '-key', a.key, '-subj', '/CN=dev-a']).toString();
    const revoked = await api(
      'POST',
      '/v1/pki/renew',
      { certificate: readFileSync(a.cert, 'utf8'), csr: csrA },
      undefined,
    );
    expect(revoked.status).toBe(401);
  });

  it('device keys: shown once, published to the bridge, refused once revoked', async () => {
    const created = await api('POST', '/v1/tenants/acme/devices/dev-b/keys', { name: 'http gateway' });
    expect(created.status).toBe(201);
    const key = created.json.key as string;
    expect(key).toMatch(/^dev_ak_/);
    const listed = await api('GET', '/v1/tenants/acme/devices/dev-b/keys');
    expect(listed.text).not.toContain(key);
    const send = () =>
      fetch(`${bridge.url}/v1/telemetry`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          message_id: `k-${Date.now()}`,
          ts: new Date().toISOString(),
          readings: { t: 1 },
        }),
      });
    await waitFor('the bridge to take the new key', async () => (await send()).status === 202, 10_000);
    // The bridge tells auth of the use: the key's last-used time is set.
    await waitFor(
      'the key to show its last use',
      async () =>
        (
          (await api('GET', '/v1/tenants/acme/devices/dev-b/keys')).json.keys as Array<{
            last_used_at: string | null;
          }>
        )[0]?.last_used_at != null,
      10_000,
    );
    const revoke = await api('DELETE', `/v1/tenants/acme/devices/dev-b/keys/${created.json.id as string}`);
    expect(revoke.status).toBe(204);
    await waitFor('the bridge to refuse the revoked key', async () => (await send()).status === 401, 10_000);
  });

  it('answers EMQX authentication and authorisation in its format, from the registry', async () => {
    const hook = (path: string, body: object, secret = HOOK_SECRET) =>
      fetch(`${auth.url}/v1/emqx/${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { result?: string } }));
    const authn = (body: object) => hook('authn', body).then((r) => r.body.result);
    const authz = (body: object) => hook('authz', body).then((r) => r.body.result);
    expect(
      await authn({ clientid: 'dev-b', username: 'dev-b', password: '', cert_common_name: 'dev-b' }),
    ).toBe('allow');
    expect(await authn({ clientid: 'x', username: 'nobody', password: '', cert_common_name: 'nobody' })).toBe(
      'deny',
    );
    expect(await authn({ clientid: 'x', username: 'dev-a', password: '', cert_common_name: 'dev-b' })).toBe(
      'deny',
    );
    expect(
      await authn({
        clientid: 'dev-b',
        username: 'dev-b',
        password: 'dev_ak_wrong',
        cert_common_name: 'undefined',
      }),
    ).toBe('deny');
    const key = (await api('POST', '/v1/tenants/acme/devices/dev-b/keys', {})).json.key as string;
    await waitFor(
      'the key in auth’s registry view',
      async () => (await authn({ username: 'dev-b', password: key })) === 'allow',
      10_000,
    );
    expect(await authn({ username: 'dev-a', password: key })).toBe('deny');
    const account = mqtt.bridgeAccount!;
    expect(await authn({ username: account.username, password: account.password })).toBe('allow');
    expect(
      await authn({ username: account.username, password: 'nope', cert_common_name: account.username }),
    ).toBe('deny');
    expect(await authz({ username: 'dev-b', topic: 'devices/dev-b/telemetry', action: 'publish' })).toBe(
      'allow',
    );
    expect(await authz({ username: 'dev-b', topic: 'devices/dev-a/telemetry', action: 'publish' })).toBe(
      'deny',
    );
    expect(await authz({ username: 'dev-b', topic: 'devices/dev-b/cmd', action: 'subscribe' })).toBe('allow');
    expect(await authz({ username: 'dev-b', topic: 'devices/+/cmd', action: 'subscribe' })).toBe('deny');
    expect(
      await authz({ username: account.username, topic: '$share/g/devices/+/telemetry', action: 'subscribe' }),
    ).toBe('allow');
    expect((await hook('authz', { username: 'dev-b' }, 'wrong')).status).toBe(403);
    // A disabled device is refused at once.
    expect((await api('PATCH', '/v1/tenants/acme/devices/dev-b', { state: 'disabled' })).status).toBe(200);
    await waitFor(
      'dev-b refused',
      async () => (await authn({ username: 'dev-b', cert_common_name: 'dev-b' })) === 'deny',
      10_000,
    );
  });

  it('deleting a device revokes its certificates and removes it from the registry', async () => {
    expect((await api('DELETE', '/v1/tenants/acme/devices/dev-b')).status).toBe(204);
    await waitFor(
      'dev-b gone from the registry',
      async () => (await registryHas('dev-b')) === undefined,
      10_000,
    );
    // The CRL is rewritten after the revocation commits, apart from the registry's outbox: either
    // may land first, so wait for the CRL itself (a CI run read it between the two).
    let serials = '';
    await waitFor(
      'dev-b’s certificate in the CRL file mosquitto reads',
      async () => {
        serials = serialsText(crlText(mqtt.pki!.crlFile));
        return serials.includes(certs['dev-b']!.serial);
      },
      10_000,
    );
    expect(serials).toContain(certs['dev-b']!.serial);
    expect((await api('GET', '/v1/tenants/acme/devices/dev-b')).status).toBe(404);
  });
});

/** A CRL as `openssl crl -text` prints it. */
function crlText(file: string, inform: 'PEM' | 'DER' = 'PEM'): string {
  return execFileSync('openssl', ['crl', '-inform', inform, '-in', file, '-noout', '-text']).toString();
}

/** That text with serials as the API gives them: lower-case hex, no colons. */
function serialsText(text: string): string {
  return text.toLowerCase().replace(/:/g, '');
}
