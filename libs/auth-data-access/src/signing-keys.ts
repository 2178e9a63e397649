import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import {
  createLocalJWKSet,
  errors,
  exportJWK,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
} from 'jose';

export interface SigningKeyOptions {
  /** A new key signs from this age of the current one on. */
  rotationMs: number;
  /** How long a key stays published after a newer one took over: at least the access-token lifetime. */
  graceMs: number;
  /** 32 bytes: private keys are sealed with AES-256-GCM at rest. Without it they are stored as JWK. */
  keyEncryptionKey?: Buffer;
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
}

interface LoadedKey {
  kid: string;
  createdAt: Date;
  publicJwk: JWK;
  privateKey: CryptoKey;
}

const ALG = 'ES256';
/** Two replicas never rotate at once: they take this transaction-level advisory lock. */
const ROTATION_LOCK = 0x1071_a0_7;

/**
 * The JWT signing keys, shared by every auth replica through PostgreSQL: the newest key
 * signs; it and the keys it replaced within the grace period are published in the JWKS, so
 * tokens signed just before a rotation still verify. Rotation happens when the newest key
 * is older than the rotation period, or on demand.
 */
export class SigningKeyRing {
  private keys: LoadedKey[] = [];
  private verifyKeys?: JWTVerifyGetKey;
  private timer?: NodeJS.Timeout;
  private loadedAt = 0;

  constructor(
    private readonly pool: Pool,
    private readonly o: SigningKeyOptions,
  ) {}

  async start(refreshEveryMs = 60_000): Promise<void> {
    if (!this.o.keyEncryptionKey)
      this.o.logger.warn(
        {},
        'AUTH_KEY_ENCRYPTION_KEY is not set: signing keys are stored unsealed in PostgreSQL',
      );
    await this.rotate(false);
    this.timer = setInterval(
      () =>
        void this.rotate(false).catch((e) => this.o.logger.warn({ err: String(e) }, 'key refresh failed')),
      refreshEveryMs,
    );
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The key that signs now. */
  get current(): { kid: string; privateKey: CryptoKey } {
    const k = this.keys[0];
    if (!k) throw new Error('no signing key loaded: SigningKeyRing.start() first');
    return k;
  }

  /** What `/.well-known/jwks.json` serves. */
  jwks(): JSONWebKeySet {
    return { keys: this.keys.map((k) => k.publicJwk) };
  }

  /** Verification keys for the auth service's own guard (the same set it publishes). */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (!this.verifyKeys) throw new Error('no signing key loaded');
    try {
      return await this.verifyKeys(header, token);
    } catch (e) {
      // Another replica may have rotated: look again, at most every 5 s.
      if (!(e instanceof errors.JWKSNoMatchingKey) || Date.now() - this.loadedAt < 5_000) throw e;
      await this.load();
      return this.verifyKeys(header, token);
    }
  };

  /** Adds a new key if the newest is due (or `force`), then reloads the published set. */
  async rotate(force: boolean): Promise<string | undefined> {
    const client = await this.pool.connect();
    let created: string | undefined;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [ROTATION_LOCK]);
      const { rows } = await client.query<{ age_ms: number }>(
        `SELECT extract(epoch FROM now() - max(created_at)) * 1000 AS age_ms FROM auth_signing_keys`,
      );
      const age = rows[0]?.age_ms;
      if (force || age === null || age === undefined || Number(age) >= this.o.rotationMs) {
        const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
        const kid = randomUUID();
        const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' };
        const sealed = this.seal(JSON.stringify(await exportJWK(privateKey)));
        await client.query(
          `INSERT INTO auth_signing_keys (kid, alg, public_jwk, private_key) VALUES ($1, $2, $3, $4)`,
          [kid, ALG, publicJwk, sealed],
        );
        created = kid;
      }
      // Keys no token can still carry are deleted.
      await client.query(
        `DELETE FROM auth_signing_keys WHERE created_at < now() - make_interval(secs => $1::double precision / 1000)`,
        [2 * this.o.rotationMs + this.o.graceMs],
      );
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
    if (created) this.o.logger.info({ kid: created }, 'new signing key');
    await this.load();
    return created;
  }

  private async load(): Promise<void> {
    const { rows } = await this.pool.query<{
      kid: string;
      created_at: Date;
      public_jwk: JWK;
      private_key: string;
    }>(`SELECT kid, created_at, public_jwk, private_key FROM auth_signing_keys ORDER BY created_at DESC`);
    const keys: LoadedKey[] = [];
    for (const [i, r] of rows.entries()) {
      // The newest signs; an older one stays published while tokens it signed may live.
      const replacedAt = i === 0 ? undefined : rows[i - 1]!.created_at;
      if (replacedAt && Date.now() - replacedAt.getTime() > this.o.graceMs) continue;
      const privateJwk = JSON.parse(this.unseal(r.private_key)) as JWK;
      keys.push({
        kid: r.kid,
        createdAt: r.created_at,
        publicJwk: r.public_jwk,
        privateKey: (await importJWK(privateJwk, ALG)) as CryptoKey,
      });
    }
    this.keys = keys;
    this.verifyKeys = createLocalJWKSet(this.jwks());
    this.loadedAt = Date.now();
  }

  private seal(plain: string): string {
    const kek = this.o.keyEncryptionKey;
    if (!kek) return `jwk:${plain}`;
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', kek, iv);
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return `gcm:${iv.toString('base64')}:${c.getAuthTag().toString('base64')}:${body.toString('base64')}`;
  }

  private unseal(stored: string): string {
    if (stored.startsWith('jwk:')) return stored.slice(4);
    const [, iv, tag, body] = stored.split(':');
    const kek = this.o.keyEncryptionKey;
    if (!kek)
      throw new Error(
        'the signing keys are sealed but AUTH_KEY_ENCRYPTION_KEY is not set: give the key they were sealed with',
      );
    const d = createDecipheriv('aes-256-gcm', kek, Buffer.from(iv!, 'base64'));
    d.setAuthTag(Buffer.from(tag!, 'base64'));
    return Buffer.concat([d.update(Buffer.from(body!, 'base64')), d.final()]).toString('utf8');
  }
}
