import { createPublicKey, randomUUID, verify as verifySignature } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { deviceKeyHash, newDeviceKey } from '@iot/contracts';
import {
  bootstrapTokenTenant,
  DeviceInputError,
  newBootstrapToken,
  parseDeviceInput,
  renewalDue,
  tokenHash,
  type DeviceInput,
} from '@iot/auth-domain';
import { AuthError, type AccountService } from './accounts';
import {
  certificateSerial,
  CertificateRequestError,
  csrPublicKey,
  parseCertificate,
  REVOCATION_REASONS,
  type CrlEntry,
  type DeviceCa,
  type IssuedCertificate,
} from './device-ca';

export interface DeviceView extends DeviceInput {
  tenant: string;
  created_at: Date;
  updated_at: Date;
}

export interface DeviceSettings {
  /** Lifetime of an enrolment (bootstrap) token. */
  bootstrapTtlS: number;
  /** Active keys a device may have at once (the registry entry carries their hashes). */
  maxKeysPerDevice: number;
}

export const DEFAULT_DEVICE_SETTINGS: DeviceSettings = { bootstrapTtlS: 24 * 3600, maxKeysPerDevice: 16 };

/** What the service tells the rest of the process: the registry outbox has work, the CRL changed. */
export interface DeviceEvents {
  registryChanged(): void;
  crlChanged(): void;
}

const DEVICE_COLUMNS = `id, tenant_id AS tenant, model, name, asset_id AS asset, metadata, state, created_at, updated_at`;

/**
 * The registry entry every service reads, written to the outbox in the transaction that
 * changed the device: `device`, `tenant`, `model`, `state` and the hashes of its active keys.
 */
const ENQUEUE_RECORD = `
  INSERT INTO auth_device_outbox (device_id, record)
  SELECT d.id, jsonb_build_object(
      'device', d.id, 'tenant', d.tenant_id, 'model', d.model, 'state', d.state,
      'key_hashes', COALESCE((SELECT jsonb_agg(k.key_hash ORDER BY k.created_at) FROM auth_device_keys k
                              WHERE k.device_id = d.id AND k.revoked_at IS NULL), '[]'::jsonb))
  FROM auth_devices d WHERE d.id = $1`;

const pgCode = (e: unknown) => (e as { code?: string }).code;

function inputError(e: unknown): never {
  if (e instanceof DeviceInputError || e instanceof CertificateRequestError)
    throw new AuthError('invalid-input', e.message);
  throw e;
}

/**
 * The device registry of each tenant, its device keys, enrolment tokens and certificates.
 * Every tenant query runs under row-level security ({@link AccountService.withTenant}); each
 * change is audited and queued in the outbox for the NATS registry in the same transaction.
 */
export class DeviceService {
  constructor(
    private readonly pool: Pool,
    private readonly accounts: AccountService,
    private readonly ca: DeviceCa | undefined,
    private readonly events: DeviceEvents,
    private readonly s: DeviceSettings = DEFAULT_DEVICE_SETTINGS,
  ) {}

  private tx<T>(tenant: string, fn: (c: PoolClient) => Promise<T>): Promise<T> {
    return this.accounts.withTenant(tenant, fn);
  }

  private async existing(c: PoolClient, tenant: string, id: string): Promise<DeviceView> {
    const r = await c.query<DeviceView>(
      `SELECT ${DEVICE_COLUMNS} FROM auth_devices WHERE tenant_id = $1 AND id = $2`,
      [tenant, id],
    );
    if (!r.rows[0])
      throw new AuthError('not-found', `device "${id}" is not registered in tenant "${tenant}"`);
    return r.rows[0];
  }

  private requireCa(): DeviceCa {
    if (!this.ca)
      throw new AuthError(
        'unavailable',
        'certificates are not issued here: the auth service has no device CA (set DEVICE_CA_CERT_FILE and DEVICE_CA_KEY_FILE)',
      );
    return this.ca;
  }

  // ---- the registry ----

  async create(tenant: string, body: Record<string, unknown>, actor: string): Promise<DeviceView> {
    let d: DeviceInput;
    try {
      d = parseDeviceInput(body);
    } catch (e) {
      inputError(e);
    }
    const created = await this.tx(tenant, async (c) => {
      const t = await c.query(`SELECT 1 FROM auth_tenants WHERE id = $1`, [tenant]);
      if (!t.rowCount) throw new AuthError('not-found', `tenant "${tenant}" does not exist`);
      let row: DeviceView;
      try {
        row = (
          await c.query<DeviceView>(
            `INSERT INTO auth_devices (id, tenant_id, model, name, asset_id, metadata, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${DEVICE_COLUMNS}`,
            [d.id, tenant, d.model, d.name, d.asset, d.metadata, d.state],
          )
        ).rows[0]!;
      } catch (e) {
        if (pgCode(e) === '23505')
          throw new AuthError(
            'conflict',
            `device id "${d.id}" is taken: device ids are unique on the platform (they name MQTT topics and certificates); choose another`,
          );
        throw e;
      }
      await c.query(ENQUEUE_RECORD, [d.id]);
      await this.accounts.audit({ tenant, actor, action: 'device.created', target: d.id }, c);
      return row;
    });
    this.events.registryChanged();
    return created;
  }

  async list(tenant: string, q: { after?: string; limit?: number; model?: string }): Promise<DeviceView[]> {
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 1000);
    return this.tx(
      tenant,
      async (c) =>
        (
          await c.query<DeviceView>(
            `SELECT ${DEVICE_COLUMNS} FROM auth_devices
           WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2) AND ($3::text IS NULL OR model = $3)
           ORDER BY id LIMIT $4`,
            [tenant, q.after ?? null, q.model ?? null, limit],
          )
        ).rows,
    );
  }

  get(tenant: string, id: string): Promise<DeviceView> {
    return this.tx(tenant, (c) => this.existing(c, tenant, id));
  }

  async update(
    tenant: string,
    id: string,
    body: Record<string, unknown>,
    actor: string,
  ): Promise<DeviceView> {
    const updated = await this.tx(tenant, async (c) => {
      const current = await this.existing(c, tenant, id);
      let d: DeviceInput;
      try {
        d = parseDeviceInput(body, current);
      } catch (e) {
        inputError(e);
      }
      const row = (
        await c.query<DeviceView>(
          `UPDATE auth_devices SET model = $3, name = $4, asset_id = $5, metadata = $6, state = $7, updated_at = now()
           WHERE tenant_id = $1 AND id = $2 RETURNING ${DEVICE_COLUMNS}`,
          [tenant, id, d.model, d.name, d.asset, d.metadata, d.state],
        )
      ).rows[0]!;
      await c.query(ENQUEUE_RECORD, [id]);
      const changed = (['model', 'name', 'asset', 'metadata', 'state'] as const).filter(
        (k) => JSON.stringify(current[k]) !== JSON.stringify(d[k]),
      );
      await this.accounts.audit(
        { tenant, actor, action: 'device.updated', target: id, details: { changed, state: d.state } },
        c,
      );
      return row;
    });
    this.events.registryChanged();
    return updated;
  }

  /** Deletes a device: its keys go with it and its certificates are revoked. */
  async remove(tenant: string, id: string, actor: string): Promise<void> {
    const revoked = await this.tx(tenant, async (c) => {
      await this.existing(c, tenant, id);
      const certs = await c.query<{ serial: string; not_after: Date; revoked_at: Date }>(
        `UPDATE auth_device_certificates SET revoked_at = now(), revoked_reason = 'cessationOfOperation'
         WHERE tenant_id = $1 AND device_id = $2 AND revoked_at IS NULL AND not_after > now()
         RETURNING serial, not_after, revoked_at`,
        [tenant, id],
      );
      for (const r of certs.rows)
        await c.query(
          `INSERT INTO auth_crl_entries (serial, revoked_at, reason, not_after) VALUES ($1, $2, $3, $4)`,
          [r.serial, r.revoked_at, REVOCATION_REASONS.cessationOfOperation, r.not_after],
        );
      await c.query(`DELETE FROM auth_devices WHERE tenant_id = $1 AND id = $2`, [tenant, id]);
      await c.query(`INSERT INTO auth_device_outbox (device_id, record) VALUES ($1, NULL)`, [id]);
      await this.accounts.audit(
        {
          tenant,
          actor,
          action: 'device.deleted',
          target: id,
          details: { certificates_revoked: certs.rowCount },
        },
        c,
      );
      return certs.rowCount ?? 0;
    });
    this.events.registryChanged();
    if (revoked > 0) this.events.crlChanged();
  }

  // ---- device keys ----

  async createKey(tenant: string, device: string, name: unknown, actor: string) {
    if (name !== undefined && (typeof name !== 'string' || name.length > 100))
      throw new AuthError(
        'invalid-input',
        'name must be a string of at most 100 characters, e.g. "gateway firmware 2.1"',
      );
    const key = newDeviceKey();
    const created = await this.tx(tenant, async (c) => {
      await this.existing(c, tenant, device);
      const active = await c.query(
        `SELECT count(*)::int AS n FROM auth_device_keys WHERE tenant_id = $1 AND device_id = $2 AND revoked_at IS NULL`,
        [tenant, device],
      );
      if (active.rows[0].n >= this.s.maxKeysPerDevice)
        throw new AuthError(
          'conflict',
          `device "${device}" has ${this.s.maxKeysPerDevice} active keys already: revoke one first`,
        );
      const row = (
        await c.query<{ id: string; name: string; created_at: Date }>(
          `INSERT INTO auth_device_keys (id, tenant_id, device_id, key_hash, name) VALUES ($1, $2, $3, $4, $5)
           RETURNING id, name, created_at`,
          [randomUUID(), tenant, device, deviceKeyHash(key), name ?? ''],
        )
      ).rows[0]!;
      await c.query(ENQUEUE_RECORD, [device]);
      await this.accounts.audit(
        { tenant, actor, action: 'device-key.created', target: device, details: { key: row.id } },
        c,
      );
      return row;
    });
    this.events.registryChanged();
    return { ...created, device, key };
  }

  listKeys(tenant: string, device: string) {
    return this.tx(tenant, async (c) => {
      await this.existing(c, tenant, device);
      return (
        await c.query(
          `SELECT id, name, created_at, last_used_at, revoked_at FROM auth_device_keys
           WHERE tenant_id = $1 AND device_id = $2 ORDER BY created_at`,
          [tenant, device],
        )
      ).rows;
    });
  }

  async revokeKey(tenant: string, device: string, keyId: string, actor: string): Promise<void> {
    await this.tx(tenant, async (c) => {
      const r = await c.query(
        `UPDATE auth_device_keys SET revoked_at = now()
         WHERE tenant_id = $1 AND device_id = $2 AND id::text = $3 AND revoked_at IS NULL`,
        [tenant, device, keyId],
      );
      if (!r.rowCount) throw new AuthError('not-found', `device "${device}" has no active key ${keyId}`);
      await c.query(ENQUEUE_RECORD, [device]);
      await this.accounts.audit(
        { tenant, actor, action: 'device-key.revoked', target: device, details: { key: keyId } },
        c,
      );
    });
    this.events.registryChanged();
  }

  /** Notes that a key was used (at most once a minute per key: it is a hint, not a log). */
  touchKey(tenant: string, key: string): Promise<void> {
    return this.touchKeyHash(tenant, deviceKeyHash(key));
  }

  async touchKeyHash(tenant: string, keyHash: string): Promise<void> {
    await this.tx(tenant, (c) =>
      c.query(
        `UPDATE auth_device_keys SET last_used_at = now()
         WHERE tenant_id = $1 AND key_hash = $2 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
        [tenant, keyHash],
      ),
    );
  }

  // ---- enrolment and certificates ----

  /** A one-time token a device enrols with (shown once; only its hash is kept). */
  async createBootstrapToken(tenant: string, device: string, ttlS: unknown, actor: string) {
    const ttl = ttlS === undefined ? this.s.bootstrapTtlS : ttlS;
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 60 || ttl > 30 * 86_400)
      throw new AuthError(
        'invalid-input',
        'ttl_s must be a whole number of seconds from 60 to 2592000 (30 days)',
      );
    this.requireCa();
    const token = newBootstrapToken(tenant);
    const expires = await this.tx(tenant, async (c) => {
      const d = await this.existing(c, tenant, device);
      if (d.state !== 'active')
        throw new AuthError('conflict', `device "${device}" is disabled: enable it before it enrols`);
      const r = await c.query<{ expires_at: Date }>(
        `INSERT INTO auth_bootstrap_tokens (token_hash, tenant_id, device_id, created_by, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) RETURNING expires_at`,
        [tokenHash(token), tenant, device, actor, ttl],
      );
      await this.accounts.audit({ tenant, actor, action: 'bootstrap-token.created', target: device }, c);
      return r.rows[0]!.expires_at;
    });
    return { device, token, expires_at: expires };
  }

  private async record(
    c: PoolClient,
    tenant: string,
    device: string,
    cert: IssuedCertificate,
    how: 'enrolment' | 'renewal',
  ): Promise<void> {
    await c.query(
      `INSERT INTO auth_device_certificates (serial, tenant_id, device_id, fingerprint, not_before, not_after, pem, issued_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [cert.serial, tenant, device, cert.fingerprint, cert.notBefore, cert.notAfter, cert.pem, how],
    );
  }

  private answer(device: string, cert: IssuedCertificate) {
    const ca = this.requireCa();
    const life = cert.notAfter.getTime() - cert.notBefore.getTime();
    return {
      device,
      serial: cert.serial,
      certificate: cert.pem,
      chain: ca.chainPem,
      not_after: cert.notAfter,
      renew_after: new Date(cert.notBefore.getTime() + (life * 2) / 3),
    };
  }

  /**
   * Enrolment: a CSR and a one-time bootstrap token give a certificate whose CN is the
   * token's device. A refused CSR does not spend the token.
   */
  async enrol(body: { token?: unknown; csr?: unknown }, address: string) {
    const ca = this.requireCa();
    const tenant = bootstrapTokenTenant(body.token);
    if (!tenant)
      throw new AuthError(
        'invalid-token',
        'token must be the bootstrap token given for this device (dev_bt_...)',
      );
    return this.tx(tenant, async (c) => {
      const t = (
        await c.query<{ device_id: string }>(
          `UPDATE auth_bootstrap_tokens SET used_at = now()
           WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING device_id`,
          [tokenHash(body.token as string)],
        )
      ).rows[0];
      if (!t)
        throw new AuthError(
          'invalid-token',
          'the bootstrap token is not known, used already or expired: ask an operator for a new one',
        );
      const d = await this.existing(c, tenant, t.device_id);
      if (d.state !== 'active') throw new AuthError('conflict', `device "${d.id}" is disabled`);
      const cert = await ca.issue(d.id, body.csr).catch(inputError);
      await this.record(c, tenant, d.id, cert, 'enrolment');
      await this.accounts.audit(
        {
          tenant,
          action: 'certificate.issued',
          target: d.id,
          address,
          details: { serial: cert.serial, via: 'enrolment' },
        },
        c,
      );
      return this.answer(d.id, cert);
    });
  }

  /**
   * Renewal: the device sends its current certificate (valid, not revoked) and a CSR. With
   * the same key, the CSR's own signature proves possession; with a new key, `signature`
   * (base64, SHA-256 over the CSR's DER, by the current key) proves it.
   */
  async renew(
    body: { certificate?: unknown; csr?: unknown; signature?: unknown },
    tenantOf: (device: string) => string | undefined,
    address: string,
  ) {
    const ca = this.requireCa();
    let current;
    try {
      current = parseCertificate(body.certificate, 'certificate');
    } catch (e) {
      inputError(e);
    }
    if (!(await ca.issued(current)))
      throw new AuthError('invalid-credentials', "certificate was not issued by this platform's device CA");
    const now = new Date();
    if (current.notAfter <= now)
      throw new AuthError(
        'invalid-credentials',
        'certificate has expired: enrol again with a new bootstrap token',
      );
    const device = current.subjectName.getField('CN')[0];
    const tenant = device ? tenantOf(device) : undefined;
    if (!device || !tenant)
      throw new AuthError('invalid-credentials', `device "${device}" is not registered`);
    if (typeof body.csr !== 'string')
      throw new AuthError('invalid-input', 'csr must be a PEM certificate signing request');
    const csrDer = pemBody(body.csr);
    let csrKey: Buffer;
    try {
      csrKey = csrPublicKey(body.csr);
    } catch (e) {
      inputError(e);
    }
    const sameKey = Buffer.from(current.publicKey.rawData).equals(csrKey);
    if (!sameKey) {
      const ok =
        typeof body.signature === 'string' &&
        verifySignature(
          'sha256',
          csrDer,
          createPublicKey(current.toString('pem')),
          Buffer.from(body.signature, 'base64'),
        );
      if (!ok)
        throw new AuthError(
          'invalid-credentials',
          'the CSR has a new key: sign its DER with the current key and send the signature (base64) as "signature"',
        );
    }
    const serial = certificateSerial(current);
    return this.tx(tenant, async (c) => {
      const known = (
        await c.query<{ revoked_at: Date | null }>(
          `SELECT revoked_at FROM auth_device_certificates WHERE tenant_id = $1 AND device_id = $2 AND serial = $3`,
          [tenant, device, serial],
        )
      ).rows[0];
      if (!known || known.revoked_at)
        throw new AuthError(
          'invalid-credentials',
          `certificate ${serial} is revoked or unknown: enrol again`,
        );
      const d = await this.existing(c, tenant, device);
      if (d.state !== 'active') throw new AuthError('conflict', `device "${device}" is disabled`);
      const cert = await ca.issue(device, body.csr).catch(inputError);
      await this.record(c, tenant, device, cert, 'renewal');
      await this.accounts.audit(
        {
          tenant,
          action: 'certificate.issued',
          target: device,
          address,
          details: {
            serial: cert.serial,
            via: 'renewal',
            previous: serial,
            early: !renewalDue(current.notBefore, current.notAfter, now),
          },
        },
        c,
      );
      return this.answer(device, cert);
    });
  }

  listCertificates(tenant: string, device: string) {
    return this.tx(
      tenant,
      async (c) =>
        (
          await c.query(
            `SELECT serial, fingerprint, not_before, not_after, issued_by, created_at, revoked_at, revoked_reason
           FROM auth_device_certificates WHERE tenant_id = $1 AND device_id = $2 ORDER BY created_at DESC`,
            [tenant, device],
          )
        ).rows,
    );
  }

  async revokeCertificate(tenant: string, device: string, serial: string, reason: unknown, actor: string) {
    const why = reason === undefined ? 'unspecified' : reason;
    if (typeof why !== 'string' || !(why in REVOCATION_REASONS))
      throw new AuthError(
        'invalid-input',
        `reason must be one of ${Object.keys(REVOCATION_REASONS).join(', ')}`,
      );
    const s = serial.toLowerCase().replace(/^0+(?=.)/, '');
    const revoked = await this.tx(tenant, async (c) => {
      const r = (
        await c.query<{ not_after: Date; revoked_at: Date }>(
          `UPDATE auth_device_certificates SET revoked_at = now(), revoked_reason = $4
           WHERE tenant_id = $1 AND device_id = $2 AND serial = $3 AND revoked_at IS NULL RETURNING not_after, revoked_at`,
          [tenant, device, s, why],
        )
      ).rows[0];
      if (!r) throw new AuthError('not-found', `device "${device}" has no unrevoked certificate ${serial}`);
      await c.query(
        `INSERT INTO auth_crl_entries (serial, revoked_at, reason, not_after) VALUES ($1, $2, $3, $4)`,
        [s, r.revoked_at, REVOCATION_REASONS[why], r.not_after],
      );
      await this.accounts.audit(
        { tenant, actor, action: 'certificate.revoked', target: device, details: { serial: s, reason: why } },
        c,
      );
      return { serial: s, device, revoked_at: r.revoked_at, reason: why };
    });
    this.events.crlChanged();
    return revoked;
  }

  /** Every revoked certificate not yet expired: what the CRL lists. */
  async crlEntries(): Promise<CrlEntry[]> {
    const r = await this.pool.query<{ serial: string; revoked_at: Date; reason: number }>(
      `SELECT serial, revoked_at, reason FROM auth_crl_entries WHERE not_after > now() ORDER BY revoked_at`,
    );
    return r.rows.map((e) => ({ serial: e.serial, revokedAt: e.revoked_at, reason: e.reason }));
  }

  /** Per tenant: active certificates, those expiring within 30 days, and the soonest expiry. */
  async certificateExpiry(): Promise<
    Array<{ tenant: string; active: number; expiring: number; soonest: Date | null }>
  > {
    const tenants = (await this.pool.query<{ id: string }>(`SELECT id FROM auth_tenants`)).rows;
    const out = [];
    for (const { id } of tenants) {
      const r = await this.tx(id, (c) =>
        c.query<{ active: number; expiring: number; soonest: Date | null }>(
          // The newest certificate of each device counts: an older one it replaced may expire unused.
          `SELECT count(*)::int AS active,
                  count(*) FILTER (WHERE not_after < now() + interval '30 days')::int AS expiring,
                  min(not_after) AS soonest
           FROM (SELECT DISTINCT ON (device_id) not_after FROM auth_device_certificates
                 WHERE tenant_id = $1 AND revoked_at IS NULL AND not_after > now()
                 ORDER BY device_id, not_after DESC) newest`,
          [id],
        ),
      );
      out.push({ tenant: id, ...r.rows[0]! });
    }
    return out;
  }
}

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----(BEGIN|END)[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}
