import { createHash, randomBytes } from 'node:crypto';

/** Prefixes say what an opaque token is, so one pasted in the wrong place is recognised. */
export const TOKEN_PREFIX = { refresh: 'rt_', invitation: 'inv_', passwordReset: 'pwr_' } as const;

/** A new opaque token: the prefix and 256 random bits. Only its {@link tokenHash} is stored. */
export function newOpaqueToken(kind: keyof typeof TOKEN_PREFIX): string {
  return TOKEN_PREFIX[kind] + randomBytes(32).toString('base64url');
}

/** SHA-256 of an opaque token: 256 random bits need no slow hash. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 256;

/** What is wrong with a new password, or undefined when it is acceptable (NIST 800-63B: length, not composition). */
export function passwordProblem(password: unknown, email: string): string | undefined {
  if (typeof password !== 'string') return 'password must be a string';
  if (password.length < PASSWORD_MIN_LENGTH)
    return `password is too short: use at least ${PASSWORD_MIN_LENGTH} characters (a phrase of a few words is fine)`;
  if (password.length > PASSWORD_MAX_LENGTH)
    return `password is too long: at most ${PASSWORD_MAX_LENGTH} characters`;
  if (password.toLowerCase().includes(email.toLowerCase().split('@')[0]!) && email.split('@')[0]!.length >= 4)
    return 'password must not contain the e-mail address';
  if (new Set(password).size < 4)
    return 'password repeats too few characters: choose one that is harder to guess';
  return undefined;
}

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}\.[^\s@]{1,63}$/;
export function isEmail(v: unknown): v is string {
  return typeof v === 'string' && v.length <= 320 && EMAIL.test(v);
}

/** Tenant ids appear in subjects and URLs: lower case, digits, `-` and `_`, up to 63 characters. */
export const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** The stored state of a refresh token, as far as rotation cares. */
export interface RefreshTokenState {
  expiresAt: Date;
  usedAt: Date | null;
  revokedAt: Date | null;
}

/**
 * What presenting a refresh token means:
 * - `rotate`: valid and unused: it is spent and a successor issued in its family;
 * - `reused`: it was spent already: someone else holds a copy, so the family is revoked;
 * - `revoked`, `expired`, `unknown`: refused.
 */
export type RefreshOutcome = 'rotate' | 'reused' | 'revoked' | 'expired' | 'unknown';

export function refreshOutcome(state: RefreshTokenState | undefined, now: Date): RefreshOutcome {
  if (!state) return 'unknown';
  if (state.revokedAt) return 'revoked';
  if (state.usedAt) return 'reused';
  if (state.expiresAt.getTime() <= now.getTime()) return 'expired';
  return 'rotate';
}
