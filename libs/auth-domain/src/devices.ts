import { randomBytes } from 'node:crypto';
import { isValidToken } from '@iot/contracts';

/** What a device registry entry holds besides its tenant. */
export interface DeviceFields {
  model: string;
  name: string;
  asset: string | null;
  metadata: Record<string, unknown>;
  state: 'active' | 'disabled';
}

export type DeviceInput = { id: string } & DeviceFields;

const MODEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_METADATA_BYTES = 4096;

/** Thrown with a message that names the field and says what to send instead. */
export class DeviceInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeviceInputError';
  }
}

type Json = Record<string, unknown>;

function field(body: Json, name: keyof DeviceFields, current?: DeviceFields): unknown {
  return name in body ? body[name] : current?.[name];
}

/**
 * Validates a device to create (`current` absent: `id` and `model` required) or a partial
 * update of one (`current` given: only the fields present change). Throws
 * {@link DeviceInputError} naming the field at fault.
 */
export function parseDeviceInput(body: Json, current?: DeviceInput): DeviceInput {
  const id = current ? current.id : body.id;
  if (current && 'id' in body && body.id !== current.id)
    throw new DeviceInputError('id cannot change: register a new device and delete this one');
  if (typeof id !== 'string' || !isValidToken(id))
    throw new DeviceInputError(
      'id must be 1-64 letters, digits, "_" or "-" (it is the certificate CN and the MQTT topic level)',
    );
  const model = field(body, 'model', current);
  if (typeof model !== 'string' || !MODEL.test(model))
    throw new DeviceInputError('model must be 1-64 letters, digits, ".", "_" or "-", e.g. "zenthos-esp32"');
  const name = field(body, 'name', current) ?? '';
  if (typeof name !== 'string' || name.length > 200)
    throw new DeviceInputError('name must be a string of at most 200 characters');
  const asset = field(body, 'asset', current) ?? null;
  if (asset !== null && (typeof asset !== 'string' || !isValidToken(asset)))
    throw new DeviceInputError('asset must be an asset id (1-64 letters, digits, "_" or "-") or null');
  const metadata = field(body, 'metadata', current) ?? {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
    throw new DeviceInputError('metadata must be a JSON object, e.g. {"field": "north-3"}');
  if (Buffer.byteLength(JSON.stringify(metadata)) > MAX_METADATA_BYTES)
    throw new DeviceInputError(`metadata must be at most ${MAX_METADATA_BYTES} bytes of JSON`);
  const state = field(body, 'state', current) ?? 'active';
  if (state !== 'active' && state !== 'disabled')
    throw new DeviceInputError('state must be "active" or "disabled"');
  return { id, model, name, asset, metadata: metadata as Record<string, unknown>, state };
}

/** One-time bootstrap tokens for certificate enrolment: `dev_bt_<256 random bits>.<tenant>`. */
export const BOOTSTRAP_TOKEN_PREFIX = 'dev_bt_';
const BOOTSTRAP_TOKEN = /^dev_bt_[A-Za-z0-9_-]{43}\.([a-z0-9][a-z0-9_-]{0,62})$/;

export function newBootstrapToken(tenant: string): string {
  return `${BOOTSTRAP_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}.${tenant}`;
}

/** The tenant a bootstrap token belongs to, or undefined when it is not one. */
export function bootstrapTokenTenant(token: unknown): string | undefined {
  if (typeof token !== 'string') return undefined;
  return BOOTSTRAP_TOKEN.exec(token)?.[1];
}

/**
 * When a device should renew: once two thirds of its certificate's lifetime are gone, so
 * a device that is offline for a while still has a third of it to come back in.
 */
export function renewalDue(notBefore: Date, notAfter: Date, now: Date): boolean {
  const life = notAfter.getTime() - notBefore.getTime();
  return now.getTime() >= notBefore.getTime() + (life * 2) / 3;
}
