/**
 * A TCP proxy on loopback, in its own process (so the load in the test's
 * process cannot slow it), that delays what the server sends back and can
 * drop every connection at once. Controlled by lines on its stdin.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { HOST } from "./redis-server.js";

export interface LatencyProxy {
  readonly port: number;
  /** Sets the milliseconds added to every reply from now on. */
  setDelay(ms: number): Promise<void>;
  /** Destroys every open connection (both sides), as a network cut would. */
  dropAll(): Promise<void>;
  close(): Promise<void>;
}

const PROXY = `
const net = require("node:net");
const [host, target, initial] = process.argv.slice(1);
let delay = Number(initial);
const open = new Set();
const server = net.createServer((client) => {
  const upstream = net.createConnection({ host, port: Number(target) });
  open.add(client); open.add(upstream);
  client.on("data", (c) => upstream.write(c));
  upstream.on("data", (c) => {
    if (delay <= 0) client.write(c);
    else setTimeout(() => client.destroyed || client.write(c), delay);
  });
  const end = () => { client.destroy(); upstream.destroy(); open.delete(client); open.delete(upstream); };
  for (const s of [client, upstream]) { s.on("close", end); s.on("error", end); }
});
server.listen(0, host, () => console.log("port " + server.address().port));
let buf = "";
process.stdin.on("data", (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf("\\n")) >= 0) {
    const [cmd, arg] = buf.slice(0, i).split(" ");
    buf = buf.slice(i + 1);
    if (cmd === "delay") delay = Number(arg);
    if (cmd === "drop") { for (const s of open) s.destroy(); open.clear(); }
    console.log("ok");
  }
});
process.stdin.on("end", () => process.exit(0));
`;

export async function startProxy(targetPort: number, delay = 0): Promise<LatencyProxy> {
  const child: ChildProcess = spawn(
    process.execPath,
    ["-e", PROXY, HOST, String(targetPort), String(delay)],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  let buf = "";
  child.stdout?.on("data", (d) => {
    buf += d;
    let i = buf.indexOf("\n");
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
      i = buf.indexOf("\n");
    }
  });
  const next = () =>
    new Promise<string>((resolve) => {
      const line = lines.shift();
      if (line !== undefined) resolve(line);
      else waiters.push(resolve);
    });
  const send = async (cmd: string) => {
    child.stdin?.write(`${cmd}\n`);
    await next();
  };
  const port = Number((await next()).split(" ")[1]);
  return {
    port,
    setDelay: (ms) => send(`delay ${ms}`),
    dropAll: () => send("drop"),
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    },
  };
}
