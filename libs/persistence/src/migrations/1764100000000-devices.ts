import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Device tables whose rows belong to one tenant: row-level security confines every query to it. */
export const TENANT_SCOPED_DEVICE_TABLES = [
  'auth_devices',
  'auth_device_keys',
  'auth_bootstrap_tokens',
  'auth_device_certificates',
] as const;

/**
 * The device registry, device keys, enrolment tokens and the certificates the device CA
 * issued, all under the same row-level security as the people tables.
 *
 * Two tables are the platform's, not a tenant's, and have no RLS: the registry outbox (what
 * to publish to the NATS device registry, written in the same transaction as the change and
 * published after commit, so the registry every service reads never misses a change) and
 * the CA's revocation list (every revoked serial, whatever its tenant, is in the one CRL).
 * The tenant-scoped role may only insert into them.
 */
export class Devices1764100000000 implements MigrationInterface {
  name = 'Devices1764100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE auth_devices (
        id         text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),  -- unique on the platform: the MQTT topic and the certificate CN
        tenant_id  text NOT NULL REFERENCES auth_tenants (id),
        model      text NOT NULL,
        name       text NOT NULL DEFAULT '',
        asset_id   text,
        metadata   jsonb NOT NULL DEFAULT '{}',
        state      text NOT NULL CHECK (state IN ('active', 'disabled')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX auth_devices_tenant ON auth_devices (tenant_id, id)`);
    await q.query(`
      CREATE TABLE auth_device_keys (
        id           uuid PRIMARY KEY,
        tenant_id    text NOT NULL,
        device_id    text NOT NULL REFERENCES auth_devices (id) ON DELETE CASCADE,
        key_hash     text NOT NULL UNIQUE,       -- SHA-256 of dev_ak_...; the key is shown once
        name         text NOT NULL DEFAULT '',
        created_at   timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz,
        revoked_at   timestamptz
      )`);
    await q.query(`CREATE INDEX auth_device_keys_device ON auth_device_keys (device_id)`);
    await q.query(`
      CREATE TABLE auth_bootstrap_tokens (
        token_hash text PRIMARY KEY,             -- SHA-256 of dev_bt_....<tenant>
        tenant_id  text NOT NULL,
        device_id  text NOT NULL REFERENCES auth_devices (id) ON DELETE CASCADE,
        created_by uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        used_at    timestamptz
      )`);
    await q.query(`
      CREATE TABLE auth_device_certificates (
        serial        text PRIMARY KEY,          -- hex, as in the CRL
        tenant_id     text NOT NULL,
        device_id     text NOT NULL,             -- kept after the device is deleted: the ledger of what the CA issued
        fingerprint   text NOT NULL,             -- SHA-256 of the DER, hex
        not_before    timestamptz NOT NULL,
        not_after     timestamptz NOT NULL,
        pem           text NOT NULL,
        issued_by     text NOT NULL,             -- enrolment | renewal
        created_at    timestamptz NOT NULL DEFAULT now(),
        revoked_at    timestamptz,
        revoked_reason text
      )`);
    await q.query(
      `CREATE INDEX auth_device_certificates_device ON auth_device_certificates (tenant_id, device_id)`,
    );
    await q.query(`
      CREATE TABLE auth_device_outbox (
        id        bigserial PRIMARY KEY,
        device_id text NOT NULL,
        record    jsonb,                         -- the registry entry to put; NULL: delete it
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE auth_crl_entries (
        serial     text PRIMARY KEY,
        revoked_at timestamptz NOT NULL,
        reason     smallint NOT NULL DEFAULT 0,  -- RFC 5280 CRLReason
        not_after  timestamptz NOT NULL          -- dropped from the CRL once the certificate has expired anyway
      )`);

    for (const table of TENANT_SCOPED_DEVICE_TABLES) {
      await q.query(`ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY`);
      await q.query(`ALTER TABLE ${table} FORCE ROW LEVEL SECURITY`);
      await q.query(`
        CREATE POLICY tenant_isolation ON ${table}
          USING (tenant_id = current_setting('app.tenant_id', true))
          WITH CHECK (tenant_id = current_setting('app.tenant_id', true))`);
      await q.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO iot_tenant_scope`);
    }
    await q.query(`GRANT INSERT ON auth_device_outbox, auth_crl_entries TO iot_tenant_scope`);
    await q.query(`GRANT USAGE ON SEQUENCE auth_device_outbox_id_seq TO iot_tenant_scope`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of [
      'auth_crl_entries',
      'auth_device_outbox',
      'auth_device_certificates',
      'auth_bootstrap_tokens',
      'auth_device_keys',
      'auth_devices',
    ])
      await q.query(`DROP TABLE IF EXISTS ${t}`);
  }
}
