import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GatewayConfigError, parseConfigFile } from "../../src/gateway/config.js";
import { match, wildcardMatch } from "../../src/gateway/match.js";
import { startServe } from "../../src/gateway/serve.js";

const FIXTURES = join(import.meta.dirname, "fixtures", "envoyproxy-ratelimit");
const load = (name: string) => parseConfigFile(name, readFileSync(join(FIXTURES, name), "utf8"));
const d = (...pairs: string[]) => {
  const out = [];
  for (let i = 0; i < pairs.length; i += 2)
    out.push({ key: pairs[i] as string, value: pairs[i + 1] as string });
  return out;
};

function error(text: string): GatewayConfigError {
  try {
    parseConfigFile("f.yaml", text);
  } catch (e) {
    if (e instanceof GatewayConfigError) return e;
    throw e;
  }
  throw new Error("no error");
}

describe("envoyproxy/ratelimit's documented examples", () => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith(".yaml"));

  it("are all there (16 blocks from Examples 1 to 11)", () => {
    expect(files).toHaveLength(16);
  });

  it.each(files)("%s loads as is", (file) => {
    expect(load(file).domain).toMatch(
      /^example|^mongo_cps$|^messaging$|^edge_proxy_per_ip$|^internal$/,
    );
  });

  it("example 2: nested descriptors, a key without a value counts each value apart", () => {
    const c = load("example-2.yaml");
    const a = match(c, d("message_type", "marketing", "to_number", "2061111111"));
    const b = match(c, d("message_type", "marketing", "to_number", "2062222222"));
    expect(a?.rule.requestsPerUnit).toBe(5);
    expect(a?.rule.unit).toBe("day");
    expect(a?.bucket).not.toBe(b?.bucket);
    expect(match(c, d("to_number", "2061111111"))?.rule.requestsPerUnit).toBe(100);
    expect(match(c, d("message_type", "marketing"))).toBeUndefined();
  });

  it("example 3: the most specific match wins; requests_per_unit 0 is allowed", () => {
    const c = load("example-3.yaml");
    expect(match(c, d("remote_address", "50.0.0.1"))?.rule.requestsPerUnit).toBe(10);
    const black = match(c, d("remote_address", "50.0.0.5"))?.rule;
    expect(black?.requestsPerUnit).toBe(0);
    expect(black?.policy).toBeUndefined();
  });

  it("example 4: a descriptor matches only a rule at its own depth", () => {
    expect(match(load("example-4a.yaml"), d("key", "value", "subkey", "subvalue"))).toBeUndefined();
    expect(
      match(load("example-4b.yaml"), d("key", "value", "subkey", "subvalue"))?.rule.requestsPerUnit,
    ).toBe(300);
  });

  it("example 5: unlimited", () => {
    const c = load("example-5.yaml");
    expect(match(c, d("ldap", "x"))?.rule.unlimited).toBe(true);
    expect(match(c, d("azure", "x"))?.rule.unit).toBe("minute");
  });

  it("example 6: shadow_mode per descriptor", () => {
    const c = load("example-6.yaml");
    expect(match(c, d("service", "auth-service", "user", "user-a"))?.rule.shadow).toBe(true);
    expect(match(c, d("service", "auth-service", "user", "user-b"))?.rule.shadow).toBe(false);
  });

  it("example 7: name and replaces", () => {
    const c = load("example-7.yaml");
    const r = match(c, d("key_2", "value_2", "user", "bkthomps"))?.rule;
    expect(r?.replaces).toEqual(["specific_limit"]);
    expect(match(c, d("key_1", "value_1", "user", "bkthomps"))?.rule.name).toBe("specific_limit");
  });

  it("example 9: wildcards anywhere in the value", () => {
    expect(match(load("example-9a.yaml"), d("key1", "valueXYZ"))).toBeDefined();
    expect(match(load("example-9a.yaml"), d("key1", "other"))).toBeUndefined();
    expect(match(load("example-9b.yaml"), d("path", "/api/123/action"))).toBeDefined();
    expect(match(load("example-9b.yaml"), d("path", "/api/123/other"))).toBeUndefined();
    expect(match(load("example-9c.yaml"), d("route", "/api/v1/resource/123/action"))).toBeDefined();
  });

  it("example 11: share_threshold makes wildcard values share one bucket", () => {
    const c = load("example-11a.yaml");
    expect(match(c, d("files", "files/a.pdf"))?.bucket).toBe(
      match(c, d("files", "files/b.csv"))?.bucket,
    );
    expect(match(c, d("files_no_share", "files_no_share/a.pdf"))?.bucket).not.toBe(
      match(c, d("files_no_share", "files_no_share/b.csv"))?.bucket,
    );
  });
});

describe("floodgate's additions", () => {
  it("burst sets the capacity apart from the rate", () => {
    const c = parseConfigFile(
      "f.yaml",
      "domain: a\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 10, burst: 20 }\n",
    );
    const p = match(c, d("k", "v"))?.rule.policy;
    expect(p).toMatchObject({ capacity: 20, refillRate: 10, interval: 1000 });
  });

  it("values are read as written: 1.0, true and 0x10 are text, as envoyproxy/ratelimit reads them", () => {
    const c = parseConfigFile(
      "f.yaml",
      "domain: a\ndescriptors:\n  - key: v\n    value: 1.0\n    rate_limit: { unit: second, requests_per_unit: 1 }\n  - key: w\n    value: true\n    rate_limit: { unit: second, requests_per_unit: 2 }\n",
    );
    expect(match(c, d("v", "1.0"))?.rule.requestsPerUnit).toBe(1);
    expect(match(c, d("v", "1"))).toBeUndefined();
    expect(match(c, d("w", "true"))?.rule.requestsPerUnit).toBe(2);
  });

  it("week, month (30 days) and year (365 days)", () => {
    for (const [unit, ms] of [
      ["week", 604_800_000],
      ["month", 2_592_000_000],
      ["year", 31_536_000_000],
    ] as const) {
      const c = parseConfigFile(
        "f.yaml",
        `domain: a\ndescriptors:\n  - key: k\n    rate_limit: { unit: ${unit}, requests_per_unit: 1 }\n`,
      );
      expect(match(c, d("k", "v"))?.rule.policy?.interval).toBe(ms);
    }
  });

  it("an unchanged rule keeps its bucket name across parses; a changed one gets a new one", () => {
    const text = (n: number) =>
      `domain: a\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: ${n} }\n`;
    const name = (n: number) =>
      match(parseConfigFile("f.yaml", text(n)), d("k", "v"))?.rule.policy?.name;
    expect(name(10)).toBe(name(10));
    expect(name(10)).not.toBe(name(5));
  });

  it("http_check with actions, trust_proxy and deny_status", () => {
    const c = parseConfigFile(
      "f.yaml",
      `domain: a
descriptors: []
http_check:
  trust_proxy: 1
  deny_status: 403
  actions:
    - - remote_address: {}
    - - request_headers: { header_name: X-Api-Key, descriptor_key: api_key }
      - method: {}
    - - generic_key: { descriptor_value: global }
`,
    );
    expect(c.httpCheck?.denyStatus).toBe(403);
    expect(c.httpCheck?.actions[1]).toEqual([
      { kind: "request_headers", key: "api_key", header: "x-api-key", skipIfAbsent: false },
      { kind: "method", key: "method" },
    ]);
  });
});

describe("errors name the file, the line, the key and the fix", () => {
  it.each([
    [
      "a misspelt setting",
      "domain: a\ndescriptors:\n  - key: k\n    rate_limt:\n      unit: second\n",
      4,
      "descriptors[0].rate_limt",
      /use one of key, value, rate_limit/,
    ],
    [
      "a unit that is not one",
      "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: seconds\n      requests_per_unit: 1\n",
      5,
      "descriptors[0].rate_limit.unit",
      /use one of second, minute/,
    ],
    [
      "a missing requests_per_unit",
      "domain: a\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n",
      5,
      "descriptors[0].rate_limit.requests_per_unit",
      /add requests_per_unit/,
    ],
    [
      "a negative count",
      "domain: a\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: -1 }\n",
      4,
      "descriptors[0].rate_limit.requests_per_unit",
      /requests allowed per unit/,
    ],
    ["a missing domain", "descriptors: []\n", 1, "domain", /add domain/],
    [
      "a nested missing key",
      "domain: a\ndescriptors:\n  - key: k\n    descriptors:\n      - value: v\n",
      5,
      "descriptors[0].descriptors[0].key",
      /add key/,
    ],
    [
      "a repeated descriptor",
      "domain: a\ndescriptors:\n  - key: k\n  - key: k\n",
      4,
      "descriptors[1]",
      /merge/,
    ],
    ["bad YAML", "domain: a\ndescriptors:\n  - key: [\n", 4, "(yaml)", /YAML syntax/],
    [
      "a replaces naming nothing",
      "domain: a\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1, replaces: [{ name: nope }] }\n",
      1,
      "replaces: nope",
      /give a rate_limit name/,
    ],
    [
      "an unknown action",
      "domain: a\nhttp_check:\n  actions:\n    - - remote_addr: {}\n",
      4,
      "http_check.actions[0][0].remote_addr",
      /remote_address/,
    ],
    [
      "a bad trust_proxy",
      "domain: a\nhttp_check:\n  trust_proxy: true\n  actions: [[{ remote_address: {} }]]\n",
      3,
      "http_check.trust_proxy",
      /hop count/,
    ],
    // Said "a whole number from 400 to 1000000000" for a status below 400.
    ...[200, 600, 429.5, "x"].map((v): [string, string, number, string, RegExp] => [
      `a deny_status of ${v}`,
      `domain: a\nhttp_check:\n  deny_status: ${v}\n  actions: [[{ remote_address: {} }]]\n`,
      3,
      "http_check.deny_status",
      /must be an HTTP status from 400 to 599\. Fix: use 429/,
    ]),
    [
      "nesting deeper than 16 levels",
      `domain: a\n${Array.from({ length: 17 }, (_, i) => `${"  ".repeat(2 * i)}descriptors:\n${"  ".repeat(2 * i)}  - key: k${i}`).join("\n")}\n`,
      35,
      "descriptors[0]",
      /flatten/,
    ],
  ])("%s", (_name, text, line, key, fix) => {
    const e = error(text);
    expect(e.line).toBe(line);
    expect(e.key.startsWith(key)).toBe(true);
    expect(e.message).toMatch(fix);
    expect(e.message).toMatch(new RegExp(`^f\\.yaml:${line}: `));
    expect(e.code).toBe("ERR_FLOODGATE_GATEWAY_CONFIG");
    expect(e.message).not.toContain("\n");
  });
});

describe("wildcardMatch", () => {
  it.each([
    [["a", ""], "abc", true],
    [["a", "c"], "abc", true],
    [["a", "c"], "ac", true],
    [["ab", "bc"], "abc", false],
    [["/api/", "/resource/", "/action"], "/api/v1/resource/2/action", true],
    [["/api/", "/resource/", "/action"], "/api/v1/resource/2/other", false],
  ])("%j ~ %s = %s", (pieces, text, ok) => {
    expect(wildcardMatch(pieces, text)).toBe(ok);
  });
});

describe("a config file left broken while serving", () => {
  it("is reported once, not at every poll, and again once it changes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "floodgate-reload-"));
    const file = join(dir, "floodgate.yaml");
    const good = (n: number) =>
      `domain: edge\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: ${n} }\n`;
    writeFileSync(file, good(5));
    const logs: string[] = [];
    const running = await startServe(
      {
        config: file,
        host: "127.0.0.1",
        port: 0,
        grpcPort: null,
        redis: undefined,
        timeout: 50,
        shadow: false,
      },
      (line) => logs.push(line),
    );
    const failures = () => logs.filter((l) => l.startsWith("config not reloaded")).length;
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    try {
      writeFileSync(file, "domain: [\n");
      // The watcher polls every second: three polls and the file event.
      await sleep(3200);
      expect(failures()).toBe(1);
      rmSync(file);
      await sleep(1500);
      expect(failures()).toBe(2);
      expect(logs.at(-1)).toMatch(/does not exist/);
      // SIGHUP (reload) always answers.
      expect(running.reload()).toBe(false);
      expect(failures()).toBe(3);
      writeFileSync(file, good(7));
      await sleep(1500);
      expect(logs.at(-1)).toMatch(/^config reloaded: edge/);
      writeFileSync(file, "domain: [\n");
      await sleep(1500);
      expect(failures()).toBe(4);
    } finally {
      await running.close(100);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
