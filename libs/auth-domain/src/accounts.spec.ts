import { isEmail, newOpaqueToken, passwordProblem, refreshOutcome, tokenHash, TENANT_ID } from './accounts';

describe('refreshOutcome', () => {
  const now = new Date('2026-11-25T10:00:00Z');
  const later = new Date('2026-12-25T10:00:00Z');
  it('rotates a valid token once; a second use is reuse; revoked and expired are refused', () => {
    expect(refreshOutcome({ expiresAt: later, usedAt: null, revokedAt: null }, now)).toBe('rotate');
    expect(refreshOutcome({ expiresAt: later, usedAt: now, revokedAt: null }, now)).toBe('reused');
    expect(refreshOutcome({ expiresAt: later, usedAt: now, revokedAt: now }, now)).toBe('revoked');
    expect(refreshOutcome({ expiresAt: now, usedAt: null, revokedAt: null }, now)).toBe('expired');
    expect(refreshOutcome(undefined, now)).toBe('unknown');
  });
});

describe('passwordProblem', () => {
  it('asks for length, not composition, and names what is wrong', () => {
    expect(passwordProblem('correct horse battery', 'ana@farm.example')).toBeUndefined();
    expect(passwordProblem('Sh0rt!', 'ana@farm.example')).toMatch(/at least 12 characters/);
    expect(passwordProblem('aaaaaaaaaaaaaaaa', 'ana@farm.example')).toMatch(/harder to guess/);
    expect(passwordProblem('my name is anabela!', 'anabela@farm.example')).toMatch(/e-mail/);
    expect(passwordProblem(42, 'ana@farm.example')).toMatch(/string/);
    expect(passwordProblem('x'.repeat(300), 'ana@farm.example')).toMatch(/too long/);
  });
});

describe('opaque tokens and identifiers', () => {
  it('makes distinct prefixed tokens whose stored hash is not the token', () => {
    const a = newOpaqueToken('refresh');
    expect(a).toMatch(/^rt_[A-Za-z0-9_-]{43}$/);
    expect(newOpaqueToken('refresh')).not.toBe(a);
    expect(tokenHash(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(tokenHash(a)).not.toContain(a.slice(3));
  });
  it('accepts plain e-mail addresses and tenant ids only', () => {
    expect(isEmail('ops@plant-7.example.com')).toBe(true);
    expect(isEmail('no at sign')).toBe(false);
    expect(TENANT_ID.test('acme-farms')).toBe(true);
    expect(TENANT_ID.test('Acme')).toBe(false);
    expect(TENANT_ID.test('a.b')).toBe(false);
  });
});
