import { generate, type Packet } from 'mqtt-packet';

/** Packet identifiers run 1-65535, then from 1 again. */
export function followingId(id: number): number {
  return id === 65_535 ? 1 : id + 1;
}

/**
 * mqtt-packet's bytes for `packet`, or, as a string, why it will not encode it: it checks what
 * it encodes (an empty client id with a persistent session, a topic of the wrong type) and
 * throws its refusal wrapped, the cause in `context`. A caller says it and closes the
 * connection rather than crash.
 */
export function encodePacket(packet: Packet, protocolVersion: 4 | 5): Buffer | string {
  try {
    return generate(packet, { protocolVersion });
  } catch (e) {
    const cause = (e as { context?: unknown }).context ?? e;
    return cause instanceof Error ? cause.message : String(cause);
  }
}
