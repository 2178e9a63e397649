import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Tables whose rows belong to one tenant: row-level security confines every query to it. */
export const TENANT_SCOPED_AUTH_TABLES = ['auth_memberships', 'auth_invitations', 'auth_audit_log'] as const;

/**
 * People and sessions: tenants, users, their roles per tenant, invitations, password resets,
 * refresh tokens (families, for reuse detection), the JWT signing keys, the audit log, and
 * the counters of the sign-in rate limiter.
 *
 * Tenant isolation underneath the code: the tenant-scoped tables have FORCE ROW LEVEL
 * SECURITY with a policy on `app.tenant_id`. The auth service runs its tenant queries as
 * the role `iot_tenant_scope` (SET LOCAL ROLE, which a superuser connection would bypass
 * otherwise) with `SET LOCAL app.tenant_id`, so a query that forgets its WHERE still sees
 * one tenant only.
 */
export class Auth1764000000000 implements MigrationInterface {
  name = 'Auth1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE auth_tenants (
        id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
        name        text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        disabled_at timestamptz
      )`);
    await q.query(`
      CREATE TABLE auth_users (
        id             uuid PRIMARY KEY,
        email          text NOT NULL,
        name           text NOT NULL DEFAULT '',
        password_hash  text NOT NULL,            -- argon2id, PHC string
        platform_admin boolean NOT NULL DEFAULT false,
        created_at     timestamptz NOT NULL DEFAULT now(),
        disabled_at    timestamptz
      )`);
    // One account per address, whatever its case.
    await q.query(`CREATE UNIQUE INDEX auth_users_email ON auth_users (lower(email))`);
    await q.query(`
      CREATE TABLE auth_memberships (
        tenant_id  text NOT NULL REFERENCES auth_tenants (id),
        user_id    uuid NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
        role       text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, user_id)
      )`);
    await q.query(`
      CREATE TABLE auth_invitations (
        id          uuid PRIMARY KEY,
        tenant_id   text NOT NULL REFERENCES auth_tenants (id),
        email       text NOT NULL,
        role        text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        token_hash  text NOT NULL UNIQUE,        -- SHA-256 of the one-time token
        invited_by  uuid,
        created_at  timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz NOT NULL,
        accepted_at timestamptz
      )`);
    await q.query(`
      CREATE TABLE auth_password_resets (
        token_hash text PRIMARY KEY,
        user_id    uuid NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        used_at    timestamptz
      )`);
    // A refresh token is used once; its successor joins the same family. A second use of
    // any member means it was stolen: the whole family is revoked.
    await q.query(`
      CREATE TABLE auth_refresh_tokens (
        token_hash     text PRIMARY KEY,         -- SHA-256 of the opaque token
        family_id      uuid NOT NULL,
        user_id        uuid NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
        tenant_id      text NOT NULL,            -- a tenant, or '_platform' for a platform admin's sign-in
        issued_at      timestamptz NOT NULL DEFAULT now(),
        expires_at     timestamptz NOT NULL,
        used_at        timestamptz,
        revoked_at     timestamptz,
        revoked_reason text
      )`);
    await q.query(`CREATE INDEX auth_refresh_tokens_family ON auth_refresh_tokens (family_id)`);
    await q.query(`CREATE INDEX auth_refresh_tokens_user ON auth_refresh_tokens (user_id, tenant_id)`);
    await q.query(`
      CREATE TABLE auth_signing_keys (
        kid         text PRIMARY KEY,
        alg         text NOT NULL,
        public_jwk  jsonb NOT NULL,
        private_key text NOT NULL,               -- JWK JSON, AES-256-GCM sealed when a key-encryption key is set
        created_at  timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE auth_audit_log (
        id        bigserial PRIMARY KEY,
        tenant_id text NOT NULL,                 -- '_platform' for actions outside any tenant
        at        timestamptz NOT NULL DEFAULT now(),
        actor     text,                          -- user id, or the e-mail tried at a failed sign-in
        action    text NOT NULL,                 -- e.g. sign-in.failed, role.changed, token.reuse-detected
        target    text,
        address   text,                          -- client IP
        details   jsonb NOT NULL DEFAULT '{}'
      )`);
    await q.query(`CREATE INDEX auth_audit_log_tenant_at ON auth_audit_log (tenant_id, at DESC)`);
    // rate-limiter-flexible's own layout (RateLimiterPostgres with tableCreated: true).
    await q.query(`
      CREATE TABLE auth_rate_limits (
        key    varchar(255) PRIMARY KEY,
        points integer NOT NULL DEFAULT 0,
        expire bigint
      )`);

    await q.query(`
      DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'iot_tenant_scope') THEN
          CREATE ROLE iot_tenant_scope NOLOGIN;
        END IF;
      END $$`);
    // The connecting user may switch to it (SET LOCAL ROLE); it may not bypass RLS.
    await q.query(`GRANT iot_tenant_scope TO CURRENT_USER`);
    for (const table of TENANT_SCOPED_AUTH_TABLES) {
      await q.query(`ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY`);
      await q.query(`ALTER TABLE ${table} FORCE ROW LEVEL SECURITY`);
      await q.query(`
        CREATE POLICY tenant_isolation ON ${table}
          USING (tenant_id = current_setting('app.tenant_id', true))
          WITH CHECK (tenant_id = current_setting('app.tenant_id', true))`);
      await q.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO iot_tenant_scope`);
    }
    await q.query(`GRANT USAGE ON SEQUENCE auth_audit_log_id_seq TO iot_tenant_scope`);
    // Read-only for the scoped role: what a tenant query joins to.
    await q.query(`GRANT SELECT ON auth_tenants TO iot_tenant_scope`);
    // Accepting an invitation creates the account in the tenant's transaction.
    await q.query(`GRANT SELECT, INSERT ON auth_users TO iot_tenant_scope`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of [
      'auth_rate_limits',
      'auth_audit_log',
      'auth_signing_keys',
      'auth_refresh_tokens',
      'auth_password_resets',
      'auth_invitations',
      'auth_memberships',
      'auth_users',
      'auth_tenants',
    ])
      await q.query(`DROP TABLE IF EXISTS ${t}`);
  }
}
