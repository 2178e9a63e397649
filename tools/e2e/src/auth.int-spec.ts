import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { Client } from 'pg';
import { JWKS_PATH } from '@iot/contracts';
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

const SERVICES = [
  'auth',
  'config',
  'mqtt-bridge',
  'demux',
  'normalizer',
  'tsdb-writer',
  'asset-worker',
  'event-engine',
  'broadcaster',
];
const ADMIN = { email: 'root@platform.example', password: 'bootstrap passphrase 1' };
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

interface SessionBody {
  access_token: string;
  refresh_token: string;
  role: string;
  tenant: string;
}

/**
 * People, tokens and tenants across the whole platform: the real auth service signs, and
 * every one of the nine services checks tokens with the keys it publishes.
 */
describe('auth: sessions, tokens checked by every service, roles and tenant isolation', () => {
  let nats: NatsHandle;
  let pg: PostgresHandle;
  let mqtt: MosquittoHandle;
  let logs: string;
  const services = new Map<string, ServiceProcess>();
  const url = (name: string) => services.get(name)!.url;
  const auth = (path: string) => `${url('auth')}${path}`;

  const call = (target: string, token: string | undefined, method = 'GET', body?: object) =>
    fetch(target, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
  const signIn = async (email: string, password: string, tenant: string) =>
    call(auth('/v1/auth/sign-in'), undefined, 'POST', { email, password, tenant });
  const session = async (email: string, password: string, tenant: string): Promise<SessionBody> => {
    const res = await signIn(email, password, tenant);
    expect(res.status).toBe(200);
    return (await res.json()) as SessionBody;
  };

  let root: SessionBody;
  const people = {
    acmeAdmin: {
      email: 'ana@acme.example',
      password: 'acme admin passphrase',
      tenant: 'acme',
      role: 'admin',
    },
    acmeViewer: {
      email: 'vic@acme.example',
      password: 'acme viewer passphrase',
      tenant: 'acme',
      role: 'viewer',
    },
    globexAdmin: {
      email: 'gus@globex.example',
      password: 'globex admin passphrase',
      tenant: 'globex',
      role: 'admin',
    },
  };
  const tokens: Record<keyof typeof people, string> = { acmeAdmin: '', acmeViewer: '', globexAdmin: '' };

  beforeAll(async () => {
    buildOnce();
    [nats, pg, mqtt] = await startTogether(startNats(), startPostgres(), startMosquitto());
    logs = tempDir('auth-logs');
    await runMigrations(pg.url);
    const authPort = await freePort();
    for (const name of SERVICES) {
      const svc = spawnService({
        root: ROOT,
        name,
        port: name === 'auth' ? authPort : await freePort(),
        logFile: join(logs, `${name}.log`),
        env: {
          ...process.env,
          NATS_URL: nats.url,
          DATABASE_URL: pg.url,
          MQTT_URL: mqtt.url,
          MQTT_CLIENT_ID: 'auth-test-bridge',
          LOG_LEVEL: 'warn',
          SHUTDOWN_GRACE_MS: '5000',
          AUTH_JWKS_URL: `http://127.0.0.1:${authPort}${JWKS_PATH}`,
          AUTH_BOOTSTRAP_ADMIN_EMAIL: ADMIN.email,
          AUTH_BOOTSTRAP_ADMIN_PASSWORD: ADMIN.password,
          AUTH_SIGN_IN_ATTEMPTS: '3',
        },
      });
      services.set(name, svc);
    }
    for (const s of services.values()) await waitReady(s);

    root = await session(ADMIN.email, ADMIN.password, '_platform');
    for (const id of ['acme', 'globex'])
      expect((await call(auth('/v1/tenants'), root.access_token, 'POST', { id, name: id })).status).toBe(201);
    // A device of globex that acme's people must not even find.
    expect(
      (await call(auth('/v1/tenants/globex/devices'), root.access_token, 'POST', { id: 'g-1', model: 'm' }))
        .status,
    ).toBe(201);
    for (const [key, p] of Object.entries(people)) {
      const inv = await call(auth(`/v1/tenants/${p.tenant}/invitations`), root.access_token, 'POST', {
        email: p.email,
        role: p.role,
      });
      expect(inv.status).toBe(201);
      const { token } = (await inv.json()) as { token: string };
      const accepted = await call(auth('/v1/invitations/accept'), undefined, 'POST', {
        token,
        password: p.password,
        name: key,
      });
      expect(accepted.status).toBe(201);
      // An invitation is good once.
      expect(
        (await call(auth('/v1/invitations/accept'), undefined, 'POST', { token, password: p.password }))
          .status,
      ).toBe(401);
      tokens[key as keyof typeof people] = (await session(p.email, p.password, p.tenant)).access_token;
    }
  }, 180_000);

  afterAll(async () => {
    for (const s of [...services.values()].reverse()) await s.process.stop(10_000);
    await Promise.all([nats?.stop(), pg?.stop(), mqtt?.stop()]);
    if (logs && !process.env.E2E_KEEP_LOGS) removeDir(logs);
    else if (logs) process.stderr.write(`auth test logs kept in ${logs}\n`);
  });

  it('every service accepts a token the auth service signed, and tells who it is for', async () => {
    for (const name of SERVICES) {
      const res = await call(`${url(name)}/v1/principal`, tokens.acmeViewer);
      expect({ name, status: res.status, body: await res.json() }).toEqual({
        name,
        status: 200,
        body: expect.objectContaining({ tenant: 'acme', role: 'viewer', platform_admin: false }),
      });
    }
  });

  it('every service refuses forged, expired, foreign and tampered tokens with 401', async () => {
    // The attacker's material: the published public key, and (to show that only the
    // claims are wrong) the real private key read from the database.
    const jwks = (await (await fetch(auth(JWKS_PATH))).json()) as { keys: JWK[] };
    const pub = jwks.keys[0]!;
    const stored = await pg.query<{ private_key: string }>(
      `SELECT private_key FROM auth_signing_keys WHERE kid = $1`,
      [pub.kid],
    );
    const realKey = await importJWK(JSON.parse(stored[0]!.private_key.replace(/^jwk:/, '')) as JWK, 'ES256');
    const rogue = await generateKeyPair('ES256');
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      sub: 'intruder',
      tid: 'acme',
      role: 'admin',
      iss: 'iot-platform-auth',
      aud: 'iot-platform',
      iat: now,
      exp: now + 600,
    };
    const signed = (c: object, key = realKey, kid = pub.kid!) =>
      new SignJWT({ ...c }).setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' }).sign(key);
    const hsInput = `${b64({ alg: 'HS256', typ: 'JWT', kid: pub.kid })}.${b64(claims)}`;
    const [h, , s] = tokens.acmeViewer.split('.');
    const forged: Record<string, string> = {
      'alg none': `${b64({ alg: 'none', typ: 'JWT', kid: pub.kid })}.${b64(claims)}.`,
      'HS256 with the public key': `${hsInput}.${createHmac('sha256', JSON.stringify(pub)).update(hsInput).digest('base64url')}`,
      expired: await signed({ ...claims, iat: now - 3600, exp: now - 1800 }),
      'wrong aud': await signed({ ...claims, aud: 'someone-else' }),
      'wrong iss': await signed({ ...claims, iss: 'https://evil.example' }),
      'tampered payload': `${h}.${b64({ ...JSON.parse(Buffer.from(tokens.acmeViewer.split('.')[1]!, 'base64url').toString()), role: 'admin' })}.${s}`,
      'unknown kid': await signed(claims, rogue.privateKey, 'rogue-key'),
      'no token': '',
    };
    const answers: Record<string, number> = {};
    const expected: Record<string, number> = {};
    for (const name of SERVICES)
      for (const [attack, token] of Object.entries(forged)) {
        const res = await call(`${url(name)}/v1/principal`, token || undefined);
        answers[`${name}: ${attack}`] = res.status;
        expected[`${name}: ${attack}`] = 401;
        if (res.status === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      }
    expect(answers).toEqual(expected);
  });

  it('a viewer reads but cannot write, through every API', async () => {
    const v = tokens.acmeViewer;
    expect((await call(`${url('config')}/v1/tenants/acme/dlq`, v)).status).toBe(200);
    const writes = {
      'dlq purge': await call(`${url('config')}/v1/tenants/acme/dlq/purge`, v, 'POST', { all: true }),
      'dlq replay': await call(`${url('config')}/v1/tenants/acme/dlq/replay`, v, 'POST', { all: true }),
      'profile put': await call(`${url('config')}/v1/tenants/acme/profiles/generic`, v, 'PUT', {
        metrics: {},
      }),
      invite: await call(auth('/v1/tenants/acme/invitations'), v, 'POST', {
        email: 'x@acme.example',
        role: 'admin',
      }),
      'list members': await call(auth('/v1/tenants/acme/users'), v),
      'create tenant': await call(auth('/v1/tenants'), v, 'POST', { id: 'sneaky' }),
      'register device': await call(auth('/v1/tenants/acme/devices'), v, 'POST', { id: 'v-1', model: 'm' }),
      'change device': await call(auth('/v1/tenants/acme/devices/v-1'), v, 'PATCH', { state: 'disabled' }),
      'delete device': await call(auth('/v1/tenants/acme/devices/v-1'), v, 'DELETE'),
      'device key': await call(auth('/v1/tenants/acme/devices/v-1/keys'), v, 'POST', {}),
      'bootstrap token': await call(auth('/v1/tenants/acme/devices/v-1/bootstrap-tokens'), v, 'POST', {}),
      'revoke certificate': await call(
        auth('/v1/tenants/acme/devices/v-1/certificates/01/revoke'),
        v,
        'POST',
        {},
      ),
    };
    expect(Object.fromEntries(Object.entries(writes).map(([k, r]) => [k, r.status]))).toEqual(
      Object.fromEntries(Object.keys(writes).map((k) => [k, 403])),
    );
    expect(((await writes['dlq purge'].json()) as { detail: string }).detail).toMatch(
      /"viewer" may not do this: it needs "operator"/,
    );
  });

  it('a user of one tenant gets 404 for any resource of another, through every API', async () => {
    const a = tokens.acmeAdmin;
    const probes = {
      'dlq list': await call(`${url('config')}/v1/tenants/globex/dlq`, a),
      'dlq item': await call(`${url('config')}/v1/tenants/globex/dlq/1`, a),
      'dlq purge': await call(`${url('config')}/v1/tenants/globex/dlq/purge`, a, 'POST', { all: true }),
      profiles: await call(`${url('config')}/v1/tenants/globex/profiles`, a),
      'profile put': await call(`${url('config')}/v1/tenants/globex/profiles/generic`, a, 'PUT', {
        metrics: {},
      }),
      members: await call(auth('/v1/tenants/globex/users'), a),
      audit: await call(auth('/v1/tenants/globex/audit'), a),
      invite: await call(auth('/v1/tenants/globex/invitations'), a, 'POST', {
        email: 'm@acme.example',
        role: 'admin',
      }),
      'role change': await call(
        auth(`/v1/tenants/globex/users/00000000-0000-0000-0000-000000000000/role`),
        a,
        'PUT',
        { role: 'viewer' },
      ),
      devices: await call(auth('/v1/tenants/globex/devices'), a),
      device: await call(auth('/v1/tenants/globex/devices/g-1'), a),
      'register device': await call(auth('/v1/tenants/globex/devices'), a, 'POST', { id: 'g-2', model: 'm' }),
      'change device': await call(auth('/v1/tenants/globex/devices/g-1'), a, 'PATCH', { state: 'disabled' }),
      'delete device': await call(auth('/v1/tenants/globex/devices/g-1'), a, 'DELETE'),
      'device keys': await call(auth('/v1/tenants/globex/devices/g-1/keys'), a),
      'new device key': await call(auth('/v1/tenants/globex/devices/g-1/keys'), a, 'POST', {}),
      certificates: await call(auth('/v1/tenants/globex/devices/g-1/certificates'), a),
      'bootstrap token': await call(auth('/v1/tenants/globex/devices/g-1/bootstrap-tokens'), a, 'POST', {}),
    };
    expect(Object.fromEntries(Object.entries(probes).map(([k, r]) => [k, r.status]))).toEqual(
      Object.fromEntries(Object.keys(probes).map((k) => [k, 404])),
    );
    // And its own tenant's answer the same routes.
    expect((await call(auth('/v1/tenants/acme/users'), a)).status).toBe(200);
    const members = (await (await call(auth('/v1/tenants/acme/users'), a)).json()) as {
      users: Array<{ email: string }>;
    };
    expect(members.users.map((u) => u.email).sort()).toEqual(['ana@acme.example', 'vic@acme.example']);
  });

  it('row-level security confines a query that forgets its tenant', async () => {
    const c = new Client({ connectionString: pg.url });
    await c.connect();
    try {
      await c.query(`BEGIN`);
      await c.query(`SET LOCAL ROLE iot_tenant_scope`);
      await c.query(`SELECT set_config('app.tenant_id', 'acme', true)`);
      const { rows } = await c.query<{ tenant_id: string }>(`SELECT tenant_id FROM auth_memberships`);
      expect(new Set(rows.map((r) => r.tenant_id))).toEqual(new Set(['acme']));
      // Writing a row of another tenant is refused as well.
      await expect(
        c.query(`INSERT INTO auth_audit_log (tenant_id, action) VALUES ('globex', 'forged')`),
      ).rejects.toThrow(/row-level security/);
      await c.query(`ROLLBACK`);
    } finally {
      await c.end();
    }
    const all = await pg.query<{ tenants: number }>(
      `SELECT count(DISTINCT tenant_id)::int AS tenants FROM auth_memberships`,
    );
    expect(all[0]!.tenants).toBe(2);
  });

  it('rotates the refresh token on every use, and a reused one revokes its whole family', async () => {
    const p = people.acmeAdmin;
    const first = await session(p.email, p.password, p.tenant);
    const refresh = (t: string) => call(auth('/v1/auth/refresh'), undefined, 'POST', { refresh_token: t });
    const r1 = await refresh(first.refresh_token);
    expect(r1.status).toBe(200);
    const second = (await r1.json()) as SessionBody;
    expect(second.refresh_token).not.toBe(first.refresh_token);
    const r2 = await refresh(second.refresh_token);
    expect(r2.status).toBe(200);
    const third = (await r2.json()) as SessionBody;

    // The first token, spent already, comes back: someone copied it.
    const reuse = await refresh(first.refresh_token);
    expect(reuse.status).toBe(401);
    expect(((await reuse.json()) as { detail: string }).detail).toMatch(/used before/);
    // The family is gone: the newest token of it no longer works either.
    expect((await refresh(third.refresh_token)).status).toBe(401);
    // Another sign-in of the same person is another family, untouched.
    const other = await session(p.email, p.password, p.tenant);
    expect((await refresh(other.refresh_token)).status).toBe(200);

    const audit = (await (
      await call(auth('/v1/tenants/acme/audit?action=token.reuse-detected'), tokens.acmeAdmin)
    ).json()) as {
      entries: Array<{ action: string }>;
    };
    expect(audit.entries).toHaveLength(1);
  });

  it('signs out: the refresh token and its family stop working', async () => {
    const p = people.acmeViewer;
    const s = await session(p.email, p.password, p.tenant);
    expect(
      (await call(auth('/v1/auth/sign-out'), undefined, 'POST', { refresh_token: s.refresh_token })).status,
    ).toBe(204);
    expect(
      (await call(auth('/v1/auth/refresh'), undefined, 'POST', { refresh_token: s.refresh_token })).status,
    ).toBe(401);
  });

  it('locks an account after repeated failed sign-ins, even against the right password, and says when to retry', async () => {
    const p = people.globexAdmin;
    for (let i = 0; i < 3; i++) {
      const res = await signIn(p.email, 'not the password at all', p.tenant);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { detail: string }).detail).toBe(
        'the e-mail, password or tenant is wrong',
      );
    }
    const locked = await signIn(p.email, p.password, p.tenant);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await locked.json()) as { detail: string }).detail).toMatch(
      /too many failed sign-ins from this account/,
    );
    // A wrong tenant is refused like a wrong password: membership is not revealed.
    const acme = people.acmeViewer;
    expect((await signIn(acme.email, acme.password, 'globex')).status).toBe(401);
    const audit = (await (await call(auth('/v1/tenants/globex/audit'), root.access_token)).json()) as {
      entries: Array<{ action: string }>;
    };
    expect(audit.entries.map((e) => e.action)).toEqual(
      expect.arrayContaining(['sign-in.failed', 'sign-in.locked']),
    );
  });

  it('resets a password with the one-time token the notifier receives, and ends old sessions', async () => {
    const p = people.acmeViewer;
    const before = await session(p.email, p.password, p.tenant);
    const nc = await connect({ servers: nats.url });
    try {
      const js = jetstream(nc);
      const consumer = await js.consumers.get('EVENTS_V1', {
        filter_subjects: 'iot.events.v1.notify.password-reset.>',
      });
      const asked = await call(auth('/v1/auth/password-reset'), undefined, 'POST', { email: p.email });
      expect(asked.status).toBe(202);
      const unknown = await call(auth('/v1/auth/password-reset'), undefined, 'POST', {
        email: 'nobody@acme.example',
      });
      expect(unknown.status).toBe(202);
      const msg = await consumer.next({ expires: 10_000 });
      const { token, email } = msg!.json<{ token: string; email: string }>();
      expect(email).toBe(p.email);
      const weak = await call(auth('/v1/auth/password-reset/confirm'), undefined, 'POST', {
        token,
        password: 'short',
      });
      expect(weak.status).toBe(400);
      const fresh = 'a brand new viewer passphrase';
      expect(
        (await call(auth('/v1/auth/password-reset/confirm'), undefined, 'POST', { token, password: fresh }))
          .status,
      ).toBe(204);
      expect(
        (await call(auth('/v1/auth/password-reset/confirm'), undefined, 'POST', { token, password: fresh }))
          .status,
      ).toBe(401);
      expect((await signIn(p.email, p.password, p.tenant)).status).toBe(401);
      expect((await signIn(p.email, fresh, p.tenant)).status).toBe(200);
      expect(
        (await call(auth('/v1/auth/refresh'), undefined, 'POST', { refresh_token: before.refresh_token }))
          .status,
      ).toBe(401);
    } finally {
      await nc.close();
    }
  });

  it('rotates the signing key: services fetch the new key when a token names it', async () => {
    const rotated = await call(auth('/v1/auth/keys/rotate'), root.access_token, 'POST');
    expect(rotated.status).toBe(201);
    const { kid } = (await rotated.json()) as { kid: string };
    const jwks = (await (await fetch(auth(JWKS_PATH))).json()) as { keys: JWK[] };
    // The new key signs; the old one stays published for the tokens it signed.
    expect(jwks.keys.map((k) => k.kid)).toHaveLength(2);
    expect(jwks.keys[0]!.kid).toBe(kid);
    const fresh = await session(people.acmeAdmin.email, people.acmeAdmin.password, 'acme');
    expect(JSON.parse(Buffer.from(fresh.access_token.split('.')[0]!, 'base64url').toString()).kid).toBe(kid);
    // Each service refetches the set on an unknown kid (at most every 30 s).
    for (const name of ['config', 'demux', 'broadcaster'])
      await waitFor(
        `${name} to accept the new key`,
        async () => (await call(`${url(name)}/v1/principal`, fresh.access_token)).status === 200,
        45_000,
      );
    // Tokens signed with the previous key still pass.
    expect((await call(`${url('config')}/v1/principal`, tokens.acmeViewer)).status).toBe(200);
  }, 60_000);
});
