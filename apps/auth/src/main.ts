import { Module } from '@nestjs/common';
import { Pool } from 'pg';
import { AccountService, DEFAULT_ACCOUNT_SETTINGS, SigningKeyRing } from '@iot/auth-data-access';
import { runService, type ServiceDefinition } from '@iot/service-runtime';
import { JwksController, KEYS, SessionController, TenantsController } from './auth.controllers';
import { authEnv } from './env';

let pool: Pool | undefined;
let keys: SigningKeyRing | undefined;

/**
 * People and sessions today: tenants, users with roles, invitations, password resets,
 * sign-in with lockout, ES256 access tokens from rotating keys published as a JWKS, refresh
 * tokens rotated with reuse detection, and the audit log. The device registry, device keys
 * and certificates come next (issue 7).
 */
export const auth: ServiceDefinition<typeof authEnv> = {
  name: 'auth',
  description:
    'Users, tenants, roles, sessions and the JWKS every service verifies tokens with; the device registry and certificates to come.',
  env: authEnv,
  consumes: false,
  module: async (env, runtime) => {
    pool = new Pool({ connectionString: env.DATABASE_URL, max: env.DB_POOL_SIZE });
    pool.on('error', (e) => runtime.logger.warn({ err: String(e) }, 'idle database connection failed'));
    const kek = env.AUTH_KEY_ENCRYPTION_KEY ? Buffer.from(env.AUTH_KEY_ENCRYPTION_KEY, 'base64') : undefined;
    if (kek && kek.length !== 32)
      throw new Error(
        `AUTH_KEY_ENCRYPTION_KEY is ${kek.length} bytes once base64-decoded; it must be 32 (openssl rand -base64 32)`,
      );
    keys = new SigningKeyRing(pool, {
      rotationMs: env.AUTH_KEY_ROTATION_H * 3_600_000,
      // A replaced key stays published while tokens it signed live, and a little longer for clocks.
      graceMs: (env.AUTH_ACCESS_TTL_S + 300) * 1000,
      keyEncryptionKey: kek,
      logger: runtime.logger,
    });
    await keys.start();
    // This service checks tokens with its own keys, not over HTTP to itself.
    runtime.accessTokens.useKeys(keys.getKey, 'the auth service’s key ring');
    const accounts = new AccountService(pool, keys, {
      ...DEFAULT_ACCOUNT_SETTINGS,
      issuer: env.AUTH_ISSUER,
      audience: env.AUTH_AUDIENCE,
      accessTtlS: env.AUTH_ACCESS_TTL_S,
      refreshTtlS: env.AUTH_REFRESH_TTL_S,
      accountAttempts: env.AUTH_SIGN_IN_ATTEMPTS,
      addressAttempts: env.AUTH_SIGN_IN_ADDRESS_ATTEMPTS,
      lockS: env.AUTH_LOCK_S,
    });
    if (env.AUTH_BOOTSTRAP_ADMIN_EMAIL && env.AUTH_BOOTSTRAP_ADMIN_PASSWORD) {
      if (
        await accounts.ensurePlatformAdmin(env.AUTH_BOOTSTRAP_ADMIN_EMAIL, env.AUTH_BOOTSTRAP_ADMIN_PASSWORD)
      )
        runtime.logger.info({ email: env.AUTH_BOOTSTRAP_ADMIN_EMAIL }, 'platform admin created');
    }
    runtime.readiness.add('database', async () => (await pool!.query('SELECT 1')).rowCount === 1);

    @Module({
      controllers: [JwksController, SessionController, TenantsController],
      providers: [
        { provide: AccountService, useValue: accounts },
        { provide: KEYS, useValue: keys },
      ],
    })
    class AuthModule {}
    return AuthModule;
  },
  onShutdown: async () => {
    keys?.stop();
    await pool?.end();
  },
};

if (require.main === module) runService(auth);
