import { createHash } from 'node:crypto';

// Looks only at the head of the payload, without parsing it: the bridge never decodes JSON.
const HEAD_BYTES = 512;
const KEY = Buffer.from('"message_id"', 'latin1');
const MAX_ID = 128;
const QUOTE = 0x22;
const COLON = 0x3a;

/**
 * The `Nats-Msg-Id` of a device message: the device's own `message_id` when it sends one
 * (so a resend after a lost PUBACK is dropped by the stream), else a hash of the device and
 * the exact payload (which carries the device's timestamp), so an identical resend is too.
 *
 * The id is the first `"message_id"` in the first 512 bytes followed by optional spaces, a
 * colon, optional spaces and a string of 1-128 of `[A-Za-z0-9_.:-]`: what the regex
 * `/"message_id"\s*:\s*"([A-Za-z0-9_.:-]{1,128})"/` finds in those bytes read as Latin-1,
 * read from the bytes themselves, without making a string of the head (message-id.spec.ts
 * holds the two to the same answer).
 */
export function messageIdOf(device: string, payload: Uint8Array): string {
  const bytes = Buffer.isBuffer(payload)
    ? payload
    : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const head = bytes.byteLength > HEAD_BYTES ? bytes.subarray(0, HEAD_BYTES) : bytes;
  for (let at = head.indexOf(KEY); at >= 0; at = head.indexOf(KEY, at + 1)) {
    const id = idAfterKey(head, at + KEY.length, head.byteLength);
    if (id !== undefined) return `${device}:${id}`;
  }
  return `${device}:h:${createHash('sha256').update(device).update('\n').update(payload).digest('hex').slice(0, 40)}`;
}

/** The quoted id after a `"message_id"` ending at `from`, within `end`; undefined if none. */
function idAfterKey(bytes: Buffer, from: number, end: number): string | undefined {
  let i = skipSpaces(bytes, from, end);
  if (i >= end || bytes[i] !== COLON) return undefined;
  i = skipSpaces(bytes, i + 1, end);
  if (i >= end || bytes[i] !== QUOTE) return undefined;
  const start = i + 1;
  let j = start;
  while (j < end && j - start <= MAX_ID && isIdByte(bytes[j]!)) j++;
  const length = j - start;
  if (length < 1 || length > MAX_ID || j >= end || bytes[j] !== QUOTE) return undefined;
  return bytes.toString('latin1', start, j);
}

/** What `\s` matches among Latin-1 characters: tab, line feed, vertical tab, form feed, return, space, no-break space. */
function skipSpaces(bytes: Buffer, i: number, end: number): number {
  while (i < end) {
    const b = bytes[i]!;
    if (!((b >= 0x09 && b <= 0x0d) || b === 0x20 || b === 0xa0)) break;
    i++;
  }
  return i;
}

function isIdByte(b: number): boolean {
  return (
    (b >= 0x30 && b <= 0x3a) || // 0-9 and ':'
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    b === 0x5f || // _
    b === 0x2e || // .
    b === 0x2d // -
  );
}
