// The vendored upstream protos define exactly the names and field numbers
// floodgate's gRPC side and its clients rely on.
import { loadSync } from "@grpc/proto-loader";
import { describe, expect, it } from "vitest";
import { PROTO_FILES } from "../../src/gateway/grpc.js";
import { PROTO } from "./helpers.js";

const defs = loadSync(PROTO_FILES, { includeDirs: [PROTO], keepCase: true });

interface Descriptor {
  name: string;
  field: { name: string; number: number }[];
  value: { name: string; number: number }[];
  nestedType: Descriptor[];
  enumType: Descriptor[];
}

/** find resolves a full type name, nested ones through their parent's descriptor. */
function find(type: string): Descriptor {
  const parts = type.split(".");
  for (let i = parts.length; i > 0; i--) {
    const top = (defs[parts.slice(0, i).join(".")] as unknown as { type?: Descriptor } | undefined)
      ?.type;
    if (top === undefined) continue;
    let d = top;
    for (const name of parts.slice(i)) {
      const next = [...(d.nestedType ?? []), ...(d.enumType ?? [])].find((n) => n.name === name);
      if (next === undefined) break;
      d = next;
    }
    if (d.name === parts[parts.length - 1]) return d;
  }
  throw new Error(`${type} is not in the vendored protos`);
}

function fields(type: string): Record<string, number> {
  return Object.fromEntries(find(type).field.map((f) => [f.name, f.number]));
}

function values(type: string): Record<string, number> {
  return Object.fromEntries(find(type).value.map((v) => [v.name, v.number]));
}

describe("vendored protos", () => {
  it("the service and method Envoy calls", () => {
    const service = defs["envoy.service.ratelimit.v3.RateLimitService"] as Record<
      string,
      { path: string }
    >;
    expect(service.ShouldRateLimit?.path).toBe(
      "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
    );
    const health = defs["grpc.health.v1.Health"] as Record<string, { path: string }>;
    expect(health.Check?.path).toBe("/grpc.health.v1.Health/Check");
  });

  it("request fields", () => {
    expect(fields("envoy.service.ratelimit.v3.RateLimitRequest")).toEqual({
      domain: 1,
      descriptors: 2,
      hits_addend: 3,
    });
    expect(fields("envoy.extensions.common.ratelimit.v3.RateLimitDescriptor")).toMatchObject({
      entries: 1,
      limit: 2,
      hits_addend: 3,
    });
    expect(fields("envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry")).toEqual({
      key: 1,
      value: 2,
    });
  });

  it("response fields and enums", () => {
    expect(fields("envoy.service.ratelimit.v3.RateLimitResponse")).toMatchObject({
      overall_code: 1,
      statuses: 2,
      response_headers_to_add: 3,
    });
    expect(fields("envoy.service.ratelimit.v3.RateLimitResponse.DescriptorStatus")).toMatchObject({
      code: 1,
      current_limit: 2,
      limit_remaining: 3,
      duration_until_reset: 4,
    });
    expect(fields("envoy.service.ratelimit.v3.RateLimitResponse.RateLimit")).toEqual({
      name: 3,
      requests_per_unit: 1,
      unit: 2,
    });
    expect(values("envoy.service.ratelimit.v3.RateLimitResponse.Code")).toEqual({
      UNKNOWN: 0,
      OK: 1,
      OVER_LIMIT: 2,
    });
    expect(values("envoy.service.ratelimit.v3.RateLimitResponse.RateLimit.Unit")).toEqual({
      UNKNOWN: 0,
      SECOND: 1,
      MINUTE: 2,
      HOUR: 3,
      DAY: 4,
      WEEK: 7,
      MONTH: 5,
      YEAR: 6,
    });
    expect(fields("envoy.config.core.v3.HeaderValue")).toMatchObject({ key: 1, value: 2 });
    expect(fields("grpc.health.v1.HealthCheckResponse")).toEqual({ status: 1 });
    expect(values("grpc.health.v1.HealthCheckResponse.ServingStatus")).toMatchObject({
      SERVING: 1,
      NOT_SERVING: 2,
    });
  });
});
