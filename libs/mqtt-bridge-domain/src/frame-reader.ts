/** A PUBLISH as the bridge needs it: read from the bytes, the payload a view of them. */
export interface PublishFrame {
  cmd: 'publish';
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  dup: boolean;
  retain: boolean;
  /** QoS 1 and 2 only. */
  messageId?: number;
}

export interface FrameHandlers {
  publish(frame: PublishFrame): void;
  /** Any other packet, whole (fixed header included), for a general MQTT codec to read. */
  other(packet: Buffer): void;
  /** The stream is not MQTT 5 as the bridge reads it; nothing more is read. */
  malformed(message: string): void;
}

/**
 * Splits the bytes a broker sends (MQTT 5) into packets and reads its PUBLISHes itself, the
 * one packet a bridge gets by the thousand: topic and packet identifier read in place, the
 * payload a view of the bytes (no copy), the properties skipped (the bridge uses none, and
 * asks for no topic aliases). Other packets go whole to `other`. Feed it the socket's chunks
 * in order; a packet split across chunks waits for the rest. One reader per connection.
 */
export class FrameReader {
  private rest: Buffer | undefined;
  private broken = false;

  constructor(private readonly on: FrameHandlers) {}

  push(chunk: Buffer): void {
    if (this.broken) return;
    let bytes = chunk;
    if (this.rest) {
      bytes = Buffer.concat([this.rest, chunk]);
      this.rest = undefined;
    }
    let at = 0;
    while (at < bytes.length) {
      // Fixed header: one byte of type and flags, then the remaining length in 1-4 bytes of 7 bits.
      let length = 0;
      let shift = 0;
      let i = at + 1;
      let complete = false;
      while (i < bytes.length && i - at <= 4) {
        const b = bytes[i++]!;
        length += (b & 0x7f) << shift;
        shift += 7;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (i - at > 4) return this.fail('a remaining length longer than four bytes');
        break; // the length itself is split across chunks
      }
      const end = i + length;
      if (end > bytes.length) break;
      const type = bytes[at]! >> 4;
      if (type === 3) {
        const problem = this.publish(bytes, bytes[at]!, i, end);
        if (problem) return this.fail(problem);
      } else this.on.other(bytes.subarray(at, end));
      at = end;
    }
    if (at < bytes.length) this.rest = bytes.subarray(at);
  }

  /** Reads the PUBLISH between `from` (its variable header) and `end`; returns what is wrong, if anything. */
  private publish(bytes: Buffer, first: number, from: number, end: number): string | undefined {
    const qos = (first >> 1) & 3;
    if (qos === 3) return 'a PUBLISH with QoS 3';
    let i = from;
    if (i + 2 > end) return 'a PUBLISH too short for its topic';
    const topicLength = bytes.readUInt16BE(i);
    i += 2;
    if (topicLength === 0) return 'a PUBLISH with no topic (a topic alias, which the bridge does not accept)';
    if (i + topicLength > end) return 'a PUBLISH shorter than its topic';
    const topic = bytes.toString('utf8', i, i + topicLength);
    i += topicLength;
    let messageId: number | undefined;
    if (qos > 0) {
      if (i + 2 > end) return 'a PUBLISH too short for its packet identifier';
      messageId = bytes.readUInt16BE(i);
      i += 2;
    }
    // Properties: their length (a variable byte integer), then skipped.
    let propertiesLength = 0;
    let shift = 0;
    for (;;) {
      if (i >= end || shift > 21) return 'a PUBLISH with a malformed property length';
      const b = bytes[i++]!;
      propertiesLength += (b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) === 0) break;
    }
    i += propertiesLength;
    if (i > end) return 'a PUBLISH shorter than its properties';
    this.on.publish({
      cmd: 'publish',
      topic,
      payload: bytes.subarray(i, end),
      qos: qos as 0 | 1 | 2,
      dup: (first & 0x08) !== 0,
      retain: (first & 0x01) !== 0,
      messageId,
    });
    return undefined;
  }

  private fail(message: string): void {
    this.broken = true;
    this.rest = undefined;
    this.on.malformed(message);
  }
}
