import { num, str } from '@iot/config';

export const authEnv = {
  DATABASE_URL: str({ desc: 'PostgreSQL or TimescaleDB URL, e.g. postgres://iot:secret@db:5432/iot' }),
  DB_POOL_SIZE: num({ default: 4, desc: 'Connections to the database' }),
  AUTH_ACCESS_TTL_S: num({ default: 900, desc: 'Lifetime of an access token (s)' }),
  AUTH_REFRESH_TTL_S: num({ default: 30 * 24 * 3600, desc: 'Lifetime of a refresh token (s)' }),
  AUTH_KEY_ROTATION_H: num({ default: 24 * 7, desc: 'A new signing key every this many hours' }),
  AUTH_KEY_ENCRYPTION_KEY: str({
    default: '',
    desc: '32 bytes, base64: seals the signing keys in the database (openssl rand -base64 32)',
  }),
  AUTH_BOOTSTRAP_ADMIN_EMAIL: str({
    default: '',
    desc: 'The platform admin created at first start, if none exists',
  }),
  AUTH_BOOTSTRAP_ADMIN_PASSWORD: str({
    default: '',
    desc: "That admin's first password (at least 12 characters)",
  }),
  AUTH_SIGN_IN_ATTEMPTS: num({ default: 5, desc: 'Failed sign-ins of one account before it is locked' }),
  AUTH_SIGN_IN_ADDRESS_ATTEMPTS: num({
    default: 30,
    desc: 'Failed sign-ins from one address before it is locked',
  }),
  AUTH_LOCK_S: num({ default: 900, desc: 'How long a lock lasts (s)' }),
};
