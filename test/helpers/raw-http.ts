/**
 * Raw HTTP/1.1 for hostile-input tests: requests a well-behaved client would
 * never send (bad targets, oversized or garbage headers, no Host), written
 * byte for byte to a loopback socket or to a socket-less connection injected
 * into a server, and the answer's status line read back.
 */
import type { Server } from "node:http";
import { connect } from "node:net";
import { Duplex } from "node:stream";

/** RawAnswer is what came back: the status code (0 when the server closed without answering) and the head. */
export interface RawAnswer {
  status: number;
  head: string;
}

const HEAD_END = "\r\n\r\n";

function statusOf(text: string): RawAnswer {
  const end = text.indexOf(HEAD_END);
  const head = end < 0 ? text : text.slice(0, end);
  const match = /^HTTP\/1\.[01] (\d{3}) /.exec(head);
  return { status: match ? Number(match[1]) : 0, head };
}

/** collect reads from `socket` until a whole head has arrived, the peer closes, or `ms` pass. */
function collect(socket: Duplex, ms: number): Promise<RawAnswer> {
  return new Promise((resolve) => {
    let text = "";
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(statusOf(text));
    };
    const timer = setTimeout(done, ms);
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
      if (text.includes(HEAD_END)) done();
    });
    socket.on("end", done);
    socket.on("close", done);
    socket.on("error", done);
  });
}

/**
 * rawRequest writes `bytes` to 127.0.0.1:`port` and reads the answer's head;
 * from `localAddress` (another loopback address) when given.
 */
export function rawRequest(
  port: number,
  bytes: string | Buffer,
  ms = 5000,
  localAddress?: string,
): Promise<RawAnswer> {
  const socket = connect(
    localAddress === undefined
      ? { host: "127.0.0.1", port }
      : { host: "127.0.0.1", port, localAddress },
  );
  socket.on("connect", () => socket.write(bytes));
  return collect(socket, ms);
}

/**
 * duplexPair returns two connected in-memory streams, like a socketpair:
 * what one writes the other reads. Neither has a remote address.
 */
export function duplexPair(): [Duplex, Duplex] {
  const make = (peer: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk, _encoding, callback) {
        peer().push(chunk);
        callback();
      },
      final(callback) {
        peer().push(null);
        callback();
      },
      destroy(error, callback) {
        peer().push(null);
        callback(error);
      },
    });
  const a: Duplex = make(() => b);
  const b: Duplex = make(() => a);
  return [a, b];
}

/**
 * socketless hands `server` a connection without a remote address (as a
 * Unix socket or an already closed TCP socket gives), sends `bytes` on it
 * and reads the answer's head. Node's documentation allows injecting any
 * Duplex through the "connection" event.
 */
export function socketless(server: Server, bytes: string, ms = 5000): Promise<RawAnswer> {
  const [client, serverSide] = duplexPair();
  server.emit("connection", serverSide);
  client.write(bytes);
  return collect(client, ms);
}
