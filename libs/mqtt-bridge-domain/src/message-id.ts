import { createHash } from 'node:crypto';

// Looks only at the head of the payload, without parsing it: the bridge never decodes JSON.
const MESSAGE_ID = /"message_id"\s*:\s*"([A-Za-z0-9_.:-]{1,128})"/;
const HEAD_BYTES = 512;

/**
 * The `Nats-Msg-Id` of a device message: the device's own `message_id` when it sends one
 * (so a resend after a lost PUBACK is dropped by the stream), else a hash of the device and
 * the exact payload (which carries the device's timestamp), so an identical resend is too.
 */
export function messageIdOf(device: string, payload: Uint8Array): string {
  const head = Buffer.from(
    payload.buffer,
    payload.byteOffset,
    Math.min(payload.byteLength, HEAD_BYTES),
  ).toString('latin1');
  const m = MESSAGE_ID.exec(head);
  if (m) return `${device}:${m[1]}`;
  return `${device}:h:${createHash('sha256').update(device).update('\n').update(payload).digest('hex').slice(0, 40)}`;
}
