// The Envoy protocol proven by a second implementation: Python's grpcio with
// classes protoc generates (at test time) from the vendored protos.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeWith, type Gateway, PROTO, pythonGrpc, run, startGateway } from "./helpers.js";

const CLIENT = join(import.meta.dirname, "clients", "rls_client.py");
const CONFIG = `domain: edge
descriptors:
  - key: remote_address
    rate_limit: { unit: second, requests_per_unit: 10, burst: 20 }
  - key: generic_key
    value: global
    rate_limit: { unit: minute, requests_per_unit: 3 }
  - key: ldap
    rate_limit: { unlimited: true }
  - key: user
    rate_limit: { unit: hour, requests_per_unit: 20 }
`;

interface Reply {
  overall: string;
  statuses: {
    code: string;
    limit_remaining: number;
    requests_per_unit: number;
    unit: string;
    duration_until_reset_ms: number;
  }[];
  headers: Record<string, string>;
}

describeWith(
  "gRPC: Python grpcio client",
  ["/usr/bin/python3", "/usr/bin/protoc", "/usr/include/google/protobuf/duration.proto"],
  () => {
    let gw: Gateway;
    let out: string;
    const py = async (...args: string[]): Promise<Reply[]> => {
      const { stdout } = await run(
        "/usr/bin/python3",
        [CLIENT, `127.0.0.1:${gw.running.grpcPort}`, ...args],
        {
          env: { ...process.env, PYTHONPATH: out },
          timeout: 20_000,
        },
      );
      return stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Reply);
    };

    beforeAll(async () => {
      out = mkdtempSync(join(tmpdir(), "floodgate-pb2-"));
      const { stdout } = await run("find", [
        PROTO,
        "-name",
        "*.proto",
        "-not",
        "-path",
        "*/grpc/health/*",
      ]);
      const files = stdout
        .trim()
        .split("\n")
        .map((f) => f.slice(PROTO.length + 1));
      await run(
        "/usr/bin/protoc",
        ["-I", PROTO, "-I", "/usr/include", `--python_out=${out}`, ...files],
        { cwd: PROTO },
      );
      // Generated apart: a grpc/ folder on the path would hide grpcio itself.
      await run(
        "/usr/bin/protoc",
        ["-I", join(PROTO, "grpc/health/v1"), `--python_out=${out}`, "health.proto"],
        {
          cwd: join(PROTO, "grpc/health/v1"),
        },
      );
      gw = await startGateway(CONFIG);
    });
    afterAll(async () => {
      await gw?.stop();
      if (out) rmSync(out, { recursive: true, force: true });
    });

    it("health answers SERVING", async () => {
      expect(await py("health")).toEqual([{ status: "SERVING" }]);
    });

    it("10 per second, burst 20: OK x 20, then OVER_LIMIT with limit_remaining 0", async () => {
      const replies = await py("call", "edge", "21", "0", "remote_address=10.0.0.1");
      expect(replies.slice(0, 20).map((r) => r.overall)).toEqual(Array(20).fill("OK"));
      expect(replies.slice(0, 20).map((r) => r.statuses[0]?.limit_remaining)).toEqual(
        Array.from({ length: 20 }, (_, i) => 19 - i),
      );
      const last = replies[20] as Reply;
      expect(last.overall).toBe("OVER_LIMIT");
      expect(last.statuses[0]).toMatchObject({
        code: "OVER_LIMIT",
        limit_remaining: 0,
        requests_per_unit: 10,
        unit: "SECOND",
      });
      expect(last.statuses[0]?.duration_until_reset_ms).toBeGreaterThan(0);
      expect(last.statuses[0]?.duration_until_reset_ms).toBeLessThanOrEqual(1000);
      expect(last.headers["retry-after"]).toBe("1");
      expect(last.headers.ratelimit).toBe('"remote_address";r=0;t=1');
    });

    it("hits_addend is the cost, and all descriptors are one decision", async () => {
      const [a] = await py("call", "edge", "1", "2", "user=u1", "generic_key=global");
      expect(a?.overall).toBe("OK");
      expect(a?.statuses.map((s) => s.limit_remaining)).toEqual([18, 1]);
      const [b] = await py("call", "edge", "1", "2", "user=u1", "generic_key=global");
      expect(b?.overall).toBe("OVER_LIMIT");
      expect(b?.statuses.map((s) => s.code)).toEqual(["OK", "OVER_LIMIT"]);
      // The refused request charged neither bucket.
      const [c] = await py("call", "edge", "1", "1", "user=u1");
      expect(c?.statuses[0]?.limit_remaining).toBe(17);
    });

    it("a request over the bounds is refused with INVALID_ARGUMENT, and the service goes on", async () => {
      const many = Array.from({ length: 65 }, (_, i) => `remote_address=10.9.0.${i}`);
      const [r] = (await py("call", "edge", "1", "0", ...many)) as unknown as {
        error: string;
        details: string;
      }[];
      expect(r).toEqual({
        error: "INVALID_ARGUMENT",
        details: "a request may hold at most 64 descriptors",
      });
      const [e] = (await py("call", "edge", "1", "0", "=x")) as unknown as {
        error: string;
        details: string;
      }[];
      expect(e?.error).toBe("INVALID_ARGUMENT");
      const [ok] = await py("call", "edge", "1", "0", "remote_address=10.9.1.1");
      expect(ok?.overall).toBe("OK");
    });

    it("unlimited: OK with limit_remaining MaxUint32; unknown domain: OK", async () => {
      const [u] = await py("call", "edge", "1", "0", "ldap=x");
      expect(u?.statuses[0]).toMatchObject({ code: "OK", limit_remaining: 4294967295 });
      const [n] = await py("call", "nope", "1", "0", "remote_address=1");
      expect(n?.overall).toBe("OK");
    });
  },
  pythonGrpc,
);
