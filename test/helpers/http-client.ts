/**
 * A small keep-alive HTTP client over node:http for the guarantee suites:
 * unlike fetch it can send from a chosen loopback address (127.0.0.x), so one
 * machine plays many clients, and it sends header values as they are.
 */
import { Agent, request } from "node:http";

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

const agents = new Map<string, Agent>();

/** agentFor is a keep-alive agent whose sockets leave from `localAddress`. */
function agentFor(localAddress: string): Agent {
  let agent = agents.get(localAddress);
  if (agent === undefined) {
    agent = new Agent({ keepAlive: true, maxSockets: 8, localAddress } as ConstructorParameters<
      typeof Agent
    >[0]);
    agents.set(localAddress, agent);
  }
  return agent;
}

/**
 * get sends GET `path` to 127.0.0.1:`port` from `from` (default 127.0.0.1)
 * and reads the whole answer. A header given as a list is sent as that many
 * header lines.
 */
export function get(
  port: number,
  path: string,
  headers: Record<string, string | string[]> = {},
  from = "127.0.0.1",
  timeoutMs = 10_000,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: "GET", headers, agent: agentFor(from) },
      (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
        res.on("error", reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** closeAgents closes every keep-alive socket this client opened. */
export function closeAgents(): void {
  for (const agent of agents.values()) agent.destroy();
  agents.clear();
}
