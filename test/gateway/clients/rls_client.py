"""An independent client of floodgate's gRPC side: Python's grpcio with message
classes that protoc generated from the vendored protos (into PYTHONPATH).

Usage: rls_client.py HOST:PORT health
       rls_client.py HOST:PORT call DOMAIN N HITS KEY=VALUE[,KEY=VALUE...] [KEY=VALUE...]
Prints one JSON object per call on stdout.
"""
import json
import sys

import grpc
from envoy.service.ratelimit.v3 import rls_pb2
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
import health_pb2  # generated with -I proto/grpc/health/v1: a grpc/ folder would hide grpcio


def descriptor(text):
    d = ratelimit_pb2.RateLimitDescriptor()
    for pair in text.split(","):
        key, _, value = pair.partition("=")
        d.entries.add(key=key, value=value)
    return d


def main():
    target, mode = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(target)
    if mode == "health":
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        reply = check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        print(json.dumps({"status": health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}))
        return
    domain, n, hits = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    call = channel.unary_unary(
        "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
        request_serializer=rls_pb2.RateLimitRequest.SerializeToString,
        response_deserializer=rls_pb2.RateLimitResponse.FromString,
    )
    request = rls_pb2.RateLimitRequest(
        domain=domain, hits_addend=hits, descriptors=[descriptor(t) for t in sys.argv[6:]]
    )
    for _ in range(n):
        try:
            reply = call(request, timeout=5)
        except grpc.RpcError as error:
            print(json.dumps({"error": error.code().name, "details": error.details()}), flush=True)
            continue
        print(
            json.dumps(
                {
                    "overall": rls_pb2.RateLimitResponse.Code.Name(reply.overall_code),
                    "statuses": [
                        {
                            "code": rls_pb2.RateLimitResponse.Code.Name(s.code),
                            "limit_remaining": s.limit_remaining,
                            "requests_per_unit": s.current_limit.requests_per_unit,
                            "unit": rls_pb2.RateLimitResponse.RateLimit.Unit.Name(s.current_limit.unit),
                            "duration_until_reset_ms": s.duration_until_reset.seconds * 1000
                            + s.duration_until_reset.nanos // 1_000_000,
                        }
                        for s in reply.statuses
                    ],
                    "headers": {h.key: h.value for h in reply.response_headers_to_add},
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
