import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { DEFAULT_TOKEN_AUDIENCE, DEFAULT_TOKEN_ISSUER, type Role } from '@iot/contracts';

export interface TestClaims {
  tenant: string;
  role?: Role;
  platformAdmin?: boolean;
  user?: string;
  /** Seconds from now; negative for a token that has expired. */
  expiresIn?: number;
  issuer?: string;
  audience?: string;
}

/**
 * Signs access tokens as the auth service would (ES256, `kid`, iss/aud/exp), for tests of
 * services that only verify them. Services get its public key as `AUTH_JWKS` ({@link env}).
 */
export class TestTokenIssuer {
  private constructor(
    private readonly privateKey: CryptoKey,
    readonly publicJwk: JWK,
    readonly kid: string,
  ) {}

  static async create(): Promise<TestTokenIssuer> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = `test-${randomUUID()}`;
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    return new TestTokenIssuer(privateKey, publicJwk, kid);
  }

  /** The JWKS document with the public key. */
  get jwks(): string {
    return JSON.stringify({ keys: [this.publicJwk] });
  }

  /** The environment a service needs to accept this issuer's tokens. */
  get env(): Record<string, string> {
    return { AUTH_JWKS: this.jwks };
  }

  async token(c: TestClaims): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ tid: c.tenant, role: c.role ?? 'admin', ...(c.platformAdmin ? { pa: true } : {}) })
      .setProtectedHeader({ alg: 'ES256', kid: this.kid, typ: 'JWT' })
      .setSubject(c.user ?? `user-${c.tenant}`)
      .setIssuer(c.issuer ?? DEFAULT_TOKEN_ISSUER)
      .setAudience(c.audience ?? DEFAULT_TOKEN_AUDIENCE)
      .setIssuedAt(now)
      .setJti(randomUUID())
      .setExpirationTime(now + (c.expiresIn ?? 900))
      .sign(this.privateKey);
  }

  /** `fetch` that sends a token with these claims on every request. */
  fetchAs(c: TestClaims): typeof fetch {
    return async (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set('authorization', `Bearer ${await this.token(c)}`);
      return fetch(input, { ...init, headers });
    };
  }
}
