import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
} from 'jose';
import { ACCESS_TOKEN_ALGORITHMS, isRole, type Principal } from '@iot/contracts';

/** The token was refused: the reason is safe to show to the caller (it names no key material). */
export class InvalidTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidTokenError';
  }
}

/** The keys could not be fetched (the auth service is away): not the caller's fault, try again. */
export class KeysUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeysUnavailableError';
  }
}

export interface AccessTokenSettings {
  /** The auth service's `/.well-known/jwks.json`; fetched once, cached, fetched again on an unknown `kid`. */
  jwksUrl?: string;
  /** The public keys inline (a JWKS document as JSON), for a deployment without a reachable auth service. */
  jwks?: string;
  issuer: string;
  audience: string;
}

/** Leeway for clocks that differ between the auth service and this one. */
const CLOCK_TOLERANCE_S = 5;

/**
 * Verifies access tokens: the signature with a key from the JWKS (chosen by `kid`), an
 * algorithm from the allowlist only, and `iss`, `aud`, `exp`, `nbf`. jose caches the remote
 * key set and fetches it again, at most every 30 s, when a token names a `kid` it lacks.
 */
export class AccessTokenVerifier {
  private keys?: JWTVerifyGetKey;
  private source: string;

  constructor(private readonly settings: AccessTokenSettings) {
    if (settings.jwks) {
      let doc: JSONWebKeySet;
      try {
        doc = JSON.parse(settings.jwks) as JSONWebKeySet;
      } catch {
        throw new Error('AUTH_JWKS is not JSON: give a JWKS document such as {"keys":[...]}');
      }
      this.keys = createLocalJWKSet(doc);
      this.source = 'AUTH_JWKS';
    } else if (settings.jwksUrl) {
      this.keys = createRemoteJWKSet(new URL(settings.jwksUrl), {
        cooldownDuration: 30_000,
        cacheMaxAge: 10 * 60_000,
        timeoutDuration: 5_000,
      });
      this.source = settings.jwksUrl;
    } else {
      this.source = 'nothing';
    }
  }

  /** Whether this service has keys to check tokens with. */
  get configured(): boolean {
    return this.keys !== undefined;
  }

  /** Takes the keys from elsewhere: the auth service verifies with its own key store. */
  useKeys(keys: JWTVerifyGetKey, source: string): void {
    this.keys = keys;
    this.source = source;
  }

  async verify(token: string): Promise<Principal> {
    if (!this.keys)
      throw new KeysUnavailableError(
        'this service cannot check access tokens: set AUTH_JWKS_URL to the auth service’s /.well-known/jwks.json',
      );
    try {
      const { payload } = await jwtVerify(token, this.keys, {
        algorithms: [...ACCESS_TOKEN_ALGORITHMS],
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        requiredClaims: ['exp', 'sub', 'tid', 'role'],
        clockTolerance: CLOCK_TOLERANCE_S,
      });
      if (typeof payload.tid !== 'string' || !payload.tid)
        throw new InvalidTokenError('the token has no tenant (tid)');
      if (!isRole(payload.role))
        throw new InvalidTokenError(`the token's role "${String(payload.role)}" is unknown`);
      return {
        userId: payload.sub!,
        tenant: payload.tid,
        role: payload.role,
        platformAdmin: payload.pa === true,
        tokenId: payload.jti,
      };
    } catch (e) {
      throw this.explain(e);
    }
  }

  /** One plain reason per way a token fails; key-set fetch failures are the server's problem. */
  private explain(e: unknown): Error {
    if (e instanceof InvalidTokenError) return e;
    if (e instanceof errors.JWTExpired)
      return new InvalidTokenError('the token has expired: refresh it or sign in again');
    if (e instanceof errors.JWTClaimValidationFailed) {
      if (e.claim === 'nbf')
        return new InvalidTokenError('the token is not valid yet (nbf is in the future)');
      return new InvalidTokenError(`the token's "${e.claim}" claim is wrong: ${e.reason}`);
    }
    if (e instanceof errors.JOSEAlgNotAllowed || e instanceof errors.JOSENotSupported)
      return new InvalidTokenError(
        `the token's algorithm is not accepted; accepted: ${ACCESS_TOKEN_ALGORITHMS.join(', ')}`,
      );
    if (e instanceof errors.JWSSignatureVerificationFailed)
      return new InvalidTokenError('the token signature does not verify');
    if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys)
      return new InvalidTokenError(
        'the token was signed with a key this platform does not publish (unknown kid)',
      );
    if (
      e instanceof errors.JWKSTimeout ||
      e instanceof errors.JWKSInvalid ||
      isFetchFailure(e) ||
      (e instanceof errors.JOSEError && /JSON Web Key Set/.test(e.message))
    )
      return new KeysUnavailableError(
        `the signing keys could not be fetched from ${this.source}: ${(e as Error).message}`,
      );
    if (e instanceof errors.JOSEError) return new InvalidTokenError(`the token is malformed: ${e.message}`);
    return new InvalidTokenError('the token is malformed');
  }
}

function isFetchFailure(e: unknown): boolean {
  return e instanceof TypeError && /fetch failed/i.test(e.message);
}
