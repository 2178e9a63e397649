import { createHmac } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { AccessTokenVerifier, InvalidTokenError, KeysUnavailableError } from './access-token-verifier';

const ISS = 'iot-platform-auth';
const AUD = 'iot-platform';
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

interface Signer {
  key: CryptoKey;
  jwk: JWK;
  alg: 'ES256' | 'EdDSA';
}

async function signer(alg: 'ES256' | 'EdDSA', kid: string): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { key: privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg }, alg };
}

function claims(over: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { sub: 'u-1', tid: 'acme', role: 'viewer', iss: ISS, aud: AUD, iat: now, exp: now + 900, ...over };
}

function sign(s: Signer, payload: Record<string, unknown>, kid = s.jwk.kid!): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: s.alg, kid, typ: 'JWT' }).sign(s.key);
}

describe('AccessTokenVerifier', () => {
  let es: Signer;
  let ed: Signer;
  let stranger: Signer;
  let sut: AccessTokenVerifier;
  beforeAll(async () => {
    es = await signer('ES256', 'k-es');
    ed = await signer('EdDSA', 'k-ed');
    stranger = await signer('ES256', 'k-stranger');
    sut = new AccessTokenVerifier({
      jwks: JSON.stringify({ keys: [es.jwk, ed.jwk] }),
      issuer: ISS,
      audience: AUD,
    });
  });

  const refused = async (token: string, reason: RegExp) => {
    const e = await sut.verify(token).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(InvalidTokenError);
    expect((e as Error).message).toMatch(reason);
  };

  it('accepts ES256 and EdDSA tokens from the published keys and says who they are for', async () => {
    expect(await sut.verify(await sign(es, claims({ role: 'operator', jti: 't-1' })))).toEqual({
      userId: 'u-1',
      tenant: 'acme',
      role: 'operator',
      platformAdmin: false,
      tokenId: 't-1',
    });
    expect((await sut.verify(await sign(ed, claims({ pa: true })))).platformAdmin).toBe(true);
  });

  it('refuses an unsigned token (alg: none)', async () => {
    await refused(
      `${b64({ alg: 'none', typ: 'JWT', kid: 'k-es' })}.${b64(claims({ role: 'admin' }))}.`,
      /algorithm|malformed/,
    );
  });

  it('refuses HS256 signed with the public key as the HMAC secret (algorithm confusion)', async () => {
    const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: 'k-es' })}.${b64(claims({ role: 'admin' }))}`;
    for (const secret of [JSON.stringify(es.jwk), `${es.jwk.x}${es.jwk.y}`]) {
      const mac = createHmac('sha256', secret).update(input).digest('base64url');
      await refused(`${input}.${mac}`, /algorithm is not accepted/);
    }
  });

  it('refuses an expired token, and one not valid yet', async () => {
    const now = Math.floor(Date.now() / 1000);
    await refused(await sign(es, claims({ iat: now - 2000, exp: now - 60 })), /expired/);
    await refused(await sign(es, claims({ nbf: now + 600 })), /not valid yet/);
  });

  it('refuses a wrong audience or issuer', async () => {
    await refused(await sign(es, claims({ aud: 'another-platform' })), /"aud"/);
    await refused(await sign(es, claims({ iss: 'https://evil.example' })), /"iss"/);
  });

  it('refuses a tampered payload (a viewer made admin after signing)', async () => {
    const [h, , s] = (await sign(es, claims())).split('.');
    await refused(`${h}.${b64(claims({ role: 'admin' }))}.${s}`, /signature does not verify/);
  });

  it('refuses a token signed by a key it does not publish (unknown kid), and a known kid with a foreign key', async () => {
    await refused(await sign(stranger, claims()), /unknown kid/);
    await refused(await sign(stranger, claims(), 'k-es'), /signature does not verify/);
  });

  it('refuses tokens without a tenant or with an unknown role, and garbage', async () => {
    const { tid: _t, ...noTenant } = claims();
    await refused(await sign(es, noTenant), /tid/);
    await refused(await sign(es, claims({ role: 'root' })), /role "root" is unknown/);
    await refused('not.a.token', /malformed/);
    await refused('', /malformed/);
  });

  it('says the keys are missing, not that the token is bad, when it has none to check with', async () => {
    const bare = new AccessTokenVerifier({ issuer: ISS, audience: AUD });
    expect(bare.configured).toBe(false);
    await expect(bare.verify(await sign(es, claims()))).rejects.toBeInstanceOf(KeysUnavailableError);
  });

  it('refuses to start with an AUTH_JWKS that is not JSON, naming the variable', () => {
    expect(() => new AccessTokenVerifier({ jwks: '{keys', issuer: ISS, audience: AUD })).toThrow(
      /AUTH_JWKS is not JSON/,
    );
  });
});
