import { createHash } from "node:crypto";

/**
 * MEMBERS marks one limiter instance as live and counts the live ones, so
 * instances sharing a store learn how many they are. One sorted set per
 * prefix, one key (so one Cluster slot); Redis `TIME` is the clock, so
 * instances with skewed clocks agree on who has expired.
 *
 * KEYS[1]  `prefix:members`: member = instance id, score = the epoch ms at
 *          which that instance stops counting unless it marks itself again.
 * ARGV[1]  this instance's id.
 * ARGV[2]  ms this mark lasts, an integer >= 1.
 *
 * Expired members are removed, the set's own TTL is the latest expiry (an
 * idle prefix leaves nothing behind), and the reply is the number of live
 * members, this one included, so at least 1.
 */
export const MEMBERS = `local c = redis.call("TIME")
local now = c[1] * 1000 + math.floor(c[2] / 1000)
local key = KEYS[1]
redis.call("ZADD", key, now + tonumber(ARGV[2]), ARGV[1])
redis.call("ZREMRANGEBYSCORE", key, "-inf", now)
local last = redis.call("ZRANGE", key, -1, -1, "WITHSCORES")
redis.call("PEXPIRE", key, math.max(1, tonumber(last[2]) - now))
return redis.call("ZCARD", key)
`;

/** MEMBERS_SHA is the SHA-1 that `EVALSHA` names MEMBERS by; a test pins its value. */
export const MEMBERS_SHA: string = createHash("sha1").update(MEMBERS).digest("hex");
