import { randomUUID } from 'node:crypto';
import * as argon2 from 'argon2';
import { SignJWT } from 'jose';
import type { Pool, PoolClient } from 'pg';
import { RateLimiterPostgres } from 'rate-limiter-flexible';
import { isRole, type Role } from '@iot/contracts';
import {
  isEmail,
  newOpaqueToken,
  passwordProblem,
  refreshOutcome,
  tokenHash,
  TENANT_ID,
} from '@iot/auth-domain';
import type { SigningKeyRing } from './signing-keys';

/** What went wrong, by kind: the HTTP adapter maps each kind to one status (exhaustively). */
export type AuthErrorKind =
  | 'invalid-input'
  | 'invalid-credentials'
  | 'locked'
  | 'invalid-token'
  | 'not-found'
  | 'conflict'
  | 'unavailable';

export class AuthError extends Error {
  constructor(
    readonly kind: AuthErrorKind,
    message: string,
    /** For `locked`: when to try again. */
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

/** Tenant of audit entries about no tenant in particular (tenants created, keys rotated). */
export const PLATFORM_AUDIT_TENANT = '_platform';

export interface AccountSettings {
  issuer: string;
  audience: string;
  accessTtlS: number;
  refreshTtlS: number;
  invitationTtlS: number;
  resetTtlS: number;
  /** Failed sign-ins of one account before it is locked for `lockS`. */
  accountAttempts: number;
  /** Failed sign-ins from one address before it is locked for `lockS`. */
  addressAttempts: number;
  lockS: number;
}

export const DEFAULT_ACCOUNT_SETTINGS: Omit<AccountSettings, 'issuer' | 'audience'> = {
  accessTtlS: 15 * 60,
  refreshTtlS: 30 * 24 * 3600,
  invitationTtlS: 7 * 24 * 3600,
  resetTtlS: 30 * 60,
  accountAttempts: 5,
  addressAttempts: 30,
  lockS: 15 * 60,
};

export interface Session {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
  tenant: string;
  role: Role;
}

export interface AuditEntry {
  tenant: string;
  actor?: string;
  action: string;
  target?: string;
  address?: string;
  details?: Record<string, unknown>;
}

/** Argon2id, OWASP's second configuration (19 MiB, 2 passes), cheap enough for a 2-core box. */
const ARGON2 = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/**
 * People and sessions. Every query about a tenant's rows runs in {@link withTenant}: as the
 * role `iot_tenant_scope` with `app.tenant_id` set, under row-level security, besides its
 * own WHERE clause.
 */
export class AccountService {
  private readonly byAccount: RateLimiterPostgres;
  private readonly byAddress: RateLimiterPostgres;
  /** Verified against when the account does not exist, so timing does not tell. */
  private dummyHash?: Promise<string>;

  constructor(
    private readonly pool: Pool,
    private readonly keys: SigningKeyRing,
    private readonly s: AccountSettings,
  ) {
    const common = {
      storeClient: pool,
      tableName: 'auth_rate_limits',
      tableCreated: true,
      duration: s.lockS,
    };
    this.byAccount = new RateLimiterPostgres({
      ...common,
      keyPrefix: 'acct',
      points: s.accountAttempts,
      blockDuration: s.lockS,
    });
    this.byAddress = new RateLimiterPostgres({
      ...common,
      keyPrefix: 'addr',
      points: s.addressAttempts,
      blockDuration: s.lockS,
    });
  }

  /** Runs `fn` in a transaction confined to one tenant by row-level security. */
  async withTenant<T>(tenant: string, fn: (c: PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    // See TelemetryBatchWriter.write: a checked-out client's 'error' must be heard.
    const onError = () => undefined;
    c.on('error', onError);
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL ROLE iot_tenant_scope');
      await c.query(`SELECT set_config('app.tenant_id', $1, true)`, [tenant]);
      const result = await fn(c);
      await c.query('COMMIT');
      return result;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.removeListener('error', onError);
      c.release();
    }
  }

  async audit(e: AuditEntry, client?: PoolClient): Promise<void> {
    const insert = (c: PoolClient) =>
      c.query(
        `INSERT INTO auth_audit_log (tenant_id, actor, action, target, address, details) VALUES ($1, $2, $3, $4, $5, $6)`,
        [e.tenant, e.actor ?? null, e.action, e.target ?? null, e.address ?? null, e.details ?? {}],
      );
    if (client) await insert(client);
    else await this.withTenant(e.tenant, insert);
  }

  // ---- tenants and the first administrator ----

  /** Creates the platform administrator from the environment when there is none yet. */
  async ensurePlatformAdmin(email: string, password: string): Promise<boolean> {
    const { rows } = await this.pool.query(`SELECT 1 FROM auth_users WHERE platform_admin LIMIT 1`);
    if (rows.length > 0) return false;
    const problem = passwordProblem(password, email);
    if (problem) throw new AuthError('invalid-input', `AUTH_BOOTSTRAP_ADMIN_PASSWORD: ${problem}`);
    const id = randomUUID();
    await this.pool.query(
      `INSERT INTO auth_users (id, email, name, password_hash, platform_admin) VALUES ($1, $2, 'platform admin', $3, true)
       ON CONFLICT (lower(email)) DO UPDATE SET platform_admin = true`,
      [id, email, await argon2.hash(password, ARGON2)],
    );
    await this.audit({
      tenant: PLATFORM_AUDIT_TENANT,
      actor: id,
      action: 'platform-admin.created',
      target: email,
    });
    return true;
  }

  async createTenant(id: unknown, name: unknown, actor: string): Promise<{ id: string; name: string }> {
    if (typeof id !== 'string' || !TENANT_ID.test(id) || id.startsWith('_'))
      throw new AuthError(
        'invalid-input',
        `tenant id "${String(id)}" is invalid: use a-z, 0-9, "-" and "_", up to 63 characters`,
      );
    const label = typeof name === 'string' && name.trim() ? name.trim() : id;
    const { rowCount } = await this.pool.query(
      `INSERT INTO auth_tenants (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
      [id, label],
    );
    if (!rowCount) throw new AuthError('conflict', `tenant "${id}" exists already`);
    await this.audit({ tenant: id, actor, action: 'tenant.created', target: id });
    return { id, name: label };
  }

  async listTenants(): Promise<Array<{ id: string; name: string; created_at: Date }>> {
    return (await this.pool.query(`SELECT id, name, created_at FROM auth_tenants ORDER BY id`)).rows;
  }

  // ---- sessions ----

  async signIn(
    body: { email?: unknown; password?: unknown; tenant?: unknown },
    address: string,
  ): Promise<Session> {
    const { email, password, tenant } = body;
    if (!isEmail(email) || typeof password !== 'string' || typeof tenant !== 'string' || !tenant)
      throw new AuthError('invalid-input', 'send {"email", "password", "tenant"}: the tenant to sign in to');
    const accountKey = email.toLowerCase();
    for (const [limiter, key, what] of [
      [this.byAccount, accountKey, 'this account'],
      [this.byAddress, address, 'this address'],
    ] as const) {
      const r = await limiter.get(key);
      if (r && r.remainingPoints <= 0) {
        const retryAfterS = Math.max(1, Math.ceil(r.msBeforeNext / 1000));
        await this.audit({
          tenant: TENANT_ID.test(tenant) ? tenant : PLATFORM_AUDIT_TENANT,
          actor: accountKey,
          action: 'sign-in.locked',
          address,
        });
        throw new AuthError(
          'locked',
          `too many failed sign-ins from ${what}: it is locked for ${Math.ceil(retryAfterS / 60)} more minute(s); try again then, or reset the password`,
          retryAfterS,
        );
      }
    }
    const user = (
      await this.pool.query<{
        id: string;
        password_hash: string;
        platform_admin: boolean;
        disabled_at: Date | null;
      }>(`SELECT id, password_hash, platform_admin, disabled_at FROM auth_users WHERE lower(email) = $1`, [
        accountKey,
      ])
    ).rows[0];
    this.dummyHash ??= argon2.hash(newOpaqueToken('refresh'), ARGON2);
    const passwordOk = await argon2.verify(user?.password_hash ?? (await this.dummyHash), password);
    let role: Role | undefined;
    // A platform admin may also sign in to `_platform`, to act before any tenant exists.
    if (
      user &&
      passwordOk &&
      !user.disabled_at &&
      (TENANT_ID.test(tenant) || tenant === PLATFORM_AUDIT_TENANT)
    ) {
      role = await this.withTenant(tenant, async (c) => {
        const m = await c.query<{ role: Role }>(
          `SELECT m.role FROM auth_memberships m JOIN auth_tenants t ON t.id = m.tenant_id
           WHERE m.tenant_id = $1 AND m.user_id = $2 AND t.disabled_at IS NULL`,
          [tenant, user.id],
        );
        return m.rows[0]?.role;
      });
      if (!role && user.platform_admin && tenant === PLATFORM_AUDIT_TENANT) role = 'admin';
      if (!role && user.platform_admin) {
        const t = await this.pool.query(`SELECT 1 FROM auth_tenants WHERE id = $1 AND disabled_at IS NULL`, [
          tenant,
        ]);
        if (t.rowCount) role = 'admin';
      }
    }
    if (!user || !role) {
      await Promise.all([this.byAccount.penalty(accountKey, 1), this.byAddress.penalty(address, 1)]);
      await this.audit({
        tenant: TENANT_ID.test(tenant) ? tenant : PLATFORM_AUDIT_TENANT,
        actor: accountKey,
        action: 'sign-in.failed',
        address,
      });
      // One answer for a wrong password, an unknown account and a tenant it is not in.
      throw new AuthError('invalid-credentials', 'the e-mail, password or tenant is wrong');
    }
    await this.byAccount.delete(accountKey);
    const session = await this.issue(user.id, tenant, role, user.platform_admin, randomUUID());
    await this.audit({ tenant, actor: user.id, action: 'sign-in.succeeded', address });
    return session;
  }

  /** Spends a refresh token for a new pair; a token spent twice revokes its whole family. */
  async refresh(token: unknown, address: string): Promise<Session> {
    if (typeof token !== 'string' || !token.startsWith('rt_'))
      throw new AuthError(
        'invalid-input',
        'send {"refresh_token": "rt_..."} as given at sign-in or at the last refresh',
      );
    const hash = tokenHash(token);
    const now = new Date();
    const c = await this.pool.connect();
    let outcome: ReturnType<typeof refreshOutcome>;
    let row: { family_id: string; user_id: string; tenant_id: string } | undefined;
    try {
      await c.query('BEGIN');
      const r = await c.query<{
        family_id: string;
        user_id: string;
        tenant_id: string;
        expires_at: Date;
        used_at: Date | null;
        revoked_at: Date | null;
      }>(
        `SELECT family_id, user_id, tenant_id, expires_at, used_at, revoked_at FROM auth_refresh_tokens
         WHERE token_hash = $1 FOR UPDATE`,
        [hash],
      );
      const t = r.rows[0];
      row = t;
      outcome = refreshOutcome(
        t && { expiresAt: t.expires_at, usedAt: t.used_at, revokedAt: t.revoked_at },
        now,
      );
      if (outcome === 'rotate')
        await c.query(`UPDATE auth_refresh_tokens SET used_at = now() WHERE token_hash = $1`, [hash]);
      if (outcome === 'reused')
        await c.query(
          `UPDATE auth_refresh_tokens SET revoked_at = now(), revoked_reason = 'reuse-detected'
           WHERE family_id = $1 AND revoked_at IS NULL`,
          [t!.family_id],
        );
      await c.query('COMMIT');
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
    if (outcome === 'reused') {
      await this.audit({
        tenant: row!.tenant_id,
        actor: row!.user_id,
        action: 'token.reuse-detected',
        target: row!.family_id,
        address,
        details: { revoked: 'family' },
      });
      throw new AuthError(
        'invalid-token',
        'this refresh token was used before, so it may have been copied: every session of its sign-in is ended; sign in again',
      );
    }
    if (outcome !== 'rotate')
      throw new AuthError(
        'invalid-token',
        `the refresh token is ${outcome === 'unknown' ? 'not known' : outcome}: sign in again`,
      );
    const { user_id: userId, tenant_id: tenant, family_id: family } = row!;
    const who = await this.pool.query<{ platform_admin: boolean; disabled_at: Date | null }>(
      `SELECT platform_admin, disabled_at FROM auth_users WHERE id = $1`,
      [userId],
    );
    const u = who.rows[0];
    let role = await this.withTenant(
      tenant,
      async (cl) =>
        (
          await cl.query<{ role: Role }>(
            `SELECT role FROM auth_memberships WHERE tenant_id = $1 AND user_id = $2`,
            [tenant, userId],
          )
        ).rows[0]?.role,
    );
    if (!role && u?.platform_admin) role = 'admin';
    if (!u || u.disabled_at || !role) {
      await this.revokeFamily(family, 'access-removed');
      throw new AuthError('invalid-token', 'this account no longer has access to the tenant: sign in again');
    }
    return this.issue(userId, tenant, role, u.platform_admin, family);
  }

  /** Ends the sign-in the refresh token belongs to (every token of its family). */
  async signOut(token: unknown, address: string): Promise<void> {
    if (typeof token !== 'string') throw new AuthError('invalid-input', 'send {"refresh_token": "rt_..."}');
    const r = await this.pool.query<{ family_id: string; user_id: string; tenant_id: string }>(
      `SELECT family_id, user_id, tenant_id FROM auth_refresh_tokens WHERE token_hash = $1`,
      [tokenHash(token)],
    );
    const t = r.rows[0];
    if (!t) return;
    await this.revokeFamily(t.family_id, 'signed-out');
    await this.audit({
      tenant: t.tenant_id,
      actor: t.user_id,
      action: 'sign-out',
      target: t.family_id,
      address,
    });
  }

  private async revokeFamily(family: string, reason: string): Promise<void> {
    await this.pool.query(
      `UPDATE auth_refresh_tokens SET revoked_at = now(), revoked_reason = $2 WHERE family_id = $1 AND revoked_at IS NULL`,
      [family, reason],
    );
  }

  private async issue(
    userId: string,
    tenant: string,
    role: Role,
    platformAdmin: boolean,
    family: string,
  ): Promise<Session> {
    const now = Math.floor(Date.now() / 1000);
    const key = this.keys.current;
    const access = await new SignJWT({ tid: tenant, role, ...(platformAdmin ? { pa: true } : {}) })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
      .setSubject(userId)
      .setIssuer(this.s.issuer)
      .setAudience(this.s.audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + this.s.accessTtlS)
      .setJti(randomUUID())
      .sign(key.privateKey);
    const refresh = newOpaqueToken('refresh');
    await this.pool.query(
      `INSERT INTO auth_refresh_tokens (token_hash, family_id, user_id, tenant_id, expires_at)
       VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))`,
      [tokenHash(refresh), family, userId, tenant, this.s.refreshTtlS],
    );
    return {
      access_token: access,
      token_type: 'Bearer',
      expires_in: this.s.accessTtlS,
      refresh_token: refresh,
      refresh_expires_in: this.s.refreshTtlS,
      tenant,
      role,
    };
  }

  // ---- members, invitations, password resets ----

  async members(
    tenant: string,
  ): Promise<Array<{ user: string; email: string; name: string; role: Role; since: Date }>> {
    return this.withTenant(
      tenant,
      async (c) =>
        (
          await c.query(
            `SELECT u.id AS user, u.email, u.name, m.role, m.created_at AS since
           FROM auth_memberships m JOIN auth_users u ON u.id = m.user_id
           WHERE m.tenant_id = $1 ORDER BY u.email`,
            [tenant],
          )
        ).rows,
    );
  }

  /** An invitation to join the tenant with a role: its token is returned once, to be sent to the invitee. */
  async invite(tenant: string, body: { email?: unknown; role?: unknown }, actor: string) {
    const { email, role } = body;
    if (!isEmail(email))
      throw new AuthError('invalid-input', `email "${String(email)}" is not an e-mail address`);
    if (!isRole(role))
      throw new AuthError('invalid-input', `role "${String(role)}" is unknown: viewer, operator or admin`);
    // The tenant rides in the token so that accepting it can be scoped like every tenant query.
    const token = `${newOpaqueToken('invitation')}.${tenant}`;
    const id = randomUUID();
    const expires = await this.withTenant(tenant, async (c) => {
      const t = await c.query(`SELECT 1 FROM auth_tenants WHERE id = $1`, [tenant]);
      if (!t.rowCount) throw new AuthError('not-found', `tenant "${tenant}" does not exist`);
      const r = await c.query<{ expires_at: Date }>(
        `INSERT INTO auth_invitations (id, tenant_id, email, role, token_hash, invited_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7)) RETURNING expires_at`,
        [id, tenant, email, role, tokenHash(token), actor, this.s.invitationTtlS],
      );
      await this.audit({ tenant, actor, action: 'user.invited', target: email, details: { role } }, c);
      return r.rows[0]!.expires_at;
    });
    return { invitation: id, email, role, token, expires_at: expires };
  }

  /** Accepts an invitation: a new account with this password, or an existing one (its password proves it). */
  async acceptInvitation(body: { token?: unknown; password?: unknown; name?: unknown }, address: string) {
    const { token, password, name } = body;
    const tenant =
      typeof token === 'string'
        ? /^inv_[A-Za-z0-9_-]{43}\.([a-z0-9][a-z0-9_-]{0,62})$/.exec(token)?.[1]
        : undefined;
    if (!tenant)
      throw new AuthError(
        'invalid-input',
        'send {"token": "inv_...", "password", "name"} from the invitation',
      );
    return this.withTenant(tenant, async (c) => {
      const inv = (
        await c.query<{ id: string; email: string; role: Role }>(
          `UPDATE auth_invitations SET accepted_at = now()
           WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > now() RETURNING id, email, role`,
          [tokenHash(token as string)],
        )
      ).rows[0];
      if (!inv)
        throw new AuthError(
          'invalid-token',
          'the invitation is not known, used already or expired: ask for a new one',
        );
      const existing = (
        await c.query<{ id: string; password_hash: string }>(
          `SELECT id, password_hash FROM auth_users WHERE lower(email) = lower($1)`,
          [inv.email],
        )
      ).rows[0];
      let userId: string;
      if (existing) {
        if (typeof password !== 'string' || !(await argon2.verify(existing.password_hash, password)))
          throw new AuthError(
            'invalid-credentials',
            `${inv.email} has an account: give its password to join "${tenant}"`,
          );
        userId = existing.id;
      } else {
        const problem = passwordProblem(password, inv.email);
        if (problem) throw new AuthError('invalid-input', problem);
        userId = randomUUID();
        await c.query(`INSERT INTO auth_users (id, email, name, password_hash) VALUES ($1, $2, $3, $4)`, [
          userId,
          inv.email,
          typeof name === 'string' ? name.slice(0, 200) : '',
          await argon2.hash(password as string, ARGON2),
        ]);
      }
      await c.query(
        `INSERT INTO auth_memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = EXCLUDED.role`,
        [tenant, userId, inv.role],
      );
      await this.audit(
        {
          tenant,
          actor: userId,
          action: 'invitation.accepted',
          target: inv.email,
          address,
          details: { role: inv.role },
        },
        c,
      );
      return { user: userId, tenant, role: inv.role, email: inv.email };
    });
  }

  async setRole(tenant: string, userId: string, role: unknown, actor: string) {
    if (!isRole(role))
      throw new AuthError('invalid-input', `role "${String(role)}" is unknown: viewer, operator or admin`);
    return this.withTenant(tenant, async (c) => {
      const r = await c.query<{ role: Role }>(
        `UPDATE auth_memberships m SET role = $3 FROM auth_memberships old
         WHERE m.tenant_id = $1 AND m.user_id = $2 AND old.tenant_id = m.tenant_id AND old.user_id = m.user_id
         RETURNING old.role`,
        [tenant, userId, role],
      );
      if (!r.rowCount) throw new AuthError('not-found', `user ${userId} is not a member of "${tenant}"`);
      await this.audit(
        {
          tenant,
          actor,
          action: 'role.changed',
          target: userId,
          details: { from: r.rows[0]!.role, to: role },
        },
        c,
      );
      return { user: userId, tenant, role };
    });
  }

  async removeMember(tenant: string, userId: string, actor: string): Promise<void> {
    await this.withTenant(tenant, async (c) => {
      const r = await c.query(`DELETE FROM auth_memberships WHERE tenant_id = $1 AND user_id = $2`, [
        tenant,
        userId,
      ]);
      if (!r.rowCount) throw new AuthError('not-found', `user ${userId} is not a member of "${tenant}"`);
      await this.audit({ tenant, actor, action: 'member.removed', target: userId }, c);
    });
    // Their sessions in this tenant end now; access tokens already out expire within 15 minutes.
    await this.pool.query(
      `UPDATE auth_refresh_tokens SET revoked_at = now(), revoked_reason = 'member-removed'
       WHERE user_id = $1 AND tenant_id = $2 AND revoked_at IS NULL`,
      [userId, tenant],
    );
  }

  /**
   * Starts a password reset. Returns the one-time token for the notifier to deliver, or
   * undefined for an unknown address; the API answers the same either way.
   */
  async requestPasswordReset(
    email: unknown,
    address: string,
  ): Promise<{ user: string; token: string } | undefined> {
    if (!isEmail(email))
      throw new AuthError('invalid-input', `email "${String(email)}" is not an e-mail address`);
    const u = (
      await this.pool.query<{ id: string }>(
        `SELECT id FROM auth_users WHERE lower(email) = lower($1) AND disabled_at IS NULL`,
        [email],
      )
    ).rows[0];
    if (!u) return undefined;
    const token = newOpaqueToken('passwordReset');
    await this.pool.query(
      `INSERT INTO auth_password_resets (token_hash, user_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))`,
      [tokenHash(token), u.id, this.s.resetTtlS],
    );
    await this.audit({
      tenant: PLATFORM_AUDIT_TENANT,
      actor: u.id,
      action: 'password.reset-requested',
      address,
    });
    return { user: u.id, token };
  }

  /** Sets a new password with a reset token; every session of the account ends. */
  async resetPassword(body: { token?: unknown; password?: unknown }, address: string): Promise<void> {
    const { token, password } = body;
    if (typeof token !== 'string' || !token.startsWith('pwr_'))
      throw new AuthError('invalid-input', 'send {"token": "pwr_...", "password"} from the reset message');
    const invalid = () =>
      new AuthError(
        'invalid-token',
        'the reset token is not known, used already or expired: ask for a new one',
      );
    const pending = (
      await this.pool.query<{ email: string }>(
        `SELECT u.email FROM auth_password_resets p JOIN auth_users u ON u.id = p.user_id
         WHERE p.token_hash = $1 AND p.used_at IS NULL AND p.expires_at > now()`,
        [tokenHash(token)],
      )
    ).rows[0];
    if (!pending) throw invalid();
    // A password that is refused does not spend the token: the person tries another.
    const problem = passwordProblem(password, pending.email);
    if (problem) throw new AuthError('invalid-input', problem);
    const r = await this.pool.query<{ user_id: string; email: string }>(
      `UPDATE auth_password_resets p SET used_at = now() FROM auth_users u
       WHERE p.token_hash = $1 AND p.used_at IS NULL AND p.expires_at > now() AND u.id = p.user_id
       RETURNING p.user_id, u.email`,
      [tokenHash(token)],
    );
    const row = r.rows[0];
    if (!row) throw invalid();
    await this.pool.query(`UPDATE auth_users SET password_hash = $2 WHERE id = $1`, [
      row.user_id,
      await argon2.hash(password as string, ARGON2),
    ]);
    await this.pool.query(
      `UPDATE auth_refresh_tokens SET revoked_at = now(), revoked_reason = 'password-reset' WHERE user_id = $1 AND revoked_at IS NULL`,
      [row.user_id],
    );
    await this.byAccount.delete(row.email.toLowerCase());
    await this.audit({
      tenant: PLATFORM_AUDIT_TENANT,
      actor: row.user_id,
      action: 'password.reset',
      address,
    });
  }

  /** The tenant's audit log, newest first. */
  async auditLog(tenant: string, q: { action?: string; before_id?: number; limit?: number }) {
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 1000);
    return this.withTenant(
      tenant,
      async (c) =>
        (
          await c.query(
            `SELECT id, at, actor, action, target, address, details FROM auth_audit_log
           WHERE tenant_id = $1 AND ($2::text IS NULL OR action = $2) AND ($3::bigint IS NULL OR id < $3)
           ORDER BY id DESC LIMIT $4`,
            [tenant, q.action ?? null, q.before_id ?? null, limit],
          )
        ).rows,
    );
  }
}
