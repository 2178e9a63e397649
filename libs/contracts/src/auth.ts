/** Roles a user holds in a tenant, weakest first: each may do what the ones before it may. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

/** Whether `held` is at least `needed` (admin > operator > viewer). */
export function roleAtLeast(held: Role, needed: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(needed);
}

/** Signature algorithms an access token may use; anything else (`none`, HS256, RS256) is refused. */
export const ACCESS_TOKEN_ALGORITHMS = ['ES256', 'EdDSA'] as const;

/** Defaults of `iss` and `aud` in access tokens; services take them from AUTH_ISSUER / AUTH_AUDIENCE. */
export const DEFAULT_TOKEN_ISSUER = 'iot-platform-auth';
export const DEFAULT_TOKEN_AUDIENCE = 'iot-platform';

/** Where the auth service publishes its public keys. */
export const JWKS_PATH = '/.well-known/jwks.json';

/** The claims of an access token beyond the registered ones (iss, aud, sub, exp, nbf, iat, jti). */
export interface AccessTokenClaims {
  /** The user's id. */
  sub: string;
  /** The tenant the token acts in. */
  tid: string;
  /** The user's role in that tenant. */
  role: Role;
  /** A platform administrator: may act in every tenant. */
  pa?: boolean;
}

/** Who a request acts for, once its token is verified. */
export interface Principal {
  userId: string;
  tenant: string;
  role: Role;
  platformAdmin: boolean;
  /** The token's id, for audit. */
  tokenId?: string;
}
