import { createHash } from "node:crypto";

/**
 * SCRIPT decides one request against every policy's bucket of one client,
 * atomically, with the same integer arithmetic as src/core/bucket.ts (the
 * shared test vectors run against both).
 *
 * KEYS[i]   the bucket of policy i for this client, `prefix:{id}:name`; all
 *           keys of one call share the `{id}` hash tag, so one Cluster slot.
 * ARGV[1]   the cost, whole tokens from 1 to the smallest capacity: positive
 *           to spend it when every bucket holds it, negative only to look
 *           (peek: only a refill is written, as the memory store does, so a
 *           clock that later steps back finds the same state in both).
 * ARGV[3i-1], ARGV[3i], ARGV[3i+1]
 *           policy i's capacity, refillRate and interval (ms), integers.
 * ARGV[3n+2] absent in production: the clock is Redis `TIME` (one clock for
 *           every instance, no skew). Tests only: epoch ms to inject a clock;
 *           keys then get a minute of extra TTL, since real time no longer
 *           matches the injected one.
 *
 * A refilledAt more than one interval ahead of `now` (Redis TIME stepped
 * back) is clamped to `now` and written, as src/core/bucket.ts does.
 *
 * A bucket is stored as the string "tokens refilledAt" with `PX` = the ms
 * until it is full again (capped at 1e13 ms, about 300 years); a full bucket
 * is deleted (it equals a missing one). Denials and peeks that refilled
 * nothing write nothing, so a throttled client costs Redis one GET per policy.
 * Returns `{now, allowed, tokens_1, refilledAt_1, ...}`: whole numbers, so
 * Redis's integer conversion truncates nothing.
 *
 * One policy, the common case, takes a path with no Lua tables, and a spend
 * that refilled nothing writes back the stored refilledAt text as it was
 * (each number Lua turns into text costs Redis a fraction of a microsecond).
 * Of the script's time in Redis about two fifths is Lua; the rest is
 * EVALSHA itself, TIME, GET and SET.
 */
export const SCRIPT = `local n = #KEYS
local cost = tonumber(ARGV[1])
local spend = cost > 0
if not spend then cost = -cost end
local now, extra
local clock = ARGV[3 * n + 2]
if clock then
  now = tonumber(clock)
  extra = 60000
else
  local c = redis.call("TIME")
  now = c[1] * 1000 + math.floor(c[2] / 1000)
  extra = 0
end
if n == 1 then
  local key = KEYS[1]
  local cap = tonumber(ARGV[2])
  local t, a, at, dirty = cap, now, nil, false
  local v = redis.call("GET", key)
  if v then
    local s = string.find(v, " ", 1, true)
    t = tonumber(string.sub(v, 1, s - 1))
    at = string.sub(v, s)
    a = tonumber(at)
    local int = tonumber(ARGV[4])
    if now - a >= int then
      local k = math.floor((now - a) / int)
      t = t + k * tonumber(ARGV[3])
      a = a + k * int
      at = nil
      dirty = true
    elseif a - now > int then
      a = now
      at = nil
      dirty = true
    end
    if t >= cap then
      t = cap
      a = now
      at = nil
    end
  end
  local allowed = 0
  if t >= cost then
    allowed = 1
    if spend then
      t = t - cost
      dirty = true
    end
  end
  if dirty then
    if t >= cap then
      redis.call("DEL", key)
    else
      local ttl = a - now + math.ceil((cap - t) / tonumber(ARGV[3])) * tonumber(ARGV[4]) + extra
      local state = at and string.format("%d%s", t, at) or string.format("%d %d", t, a)
      redis.call("SET", key, state, "PX", string.format("%d", math.min(ttl, 1e13)))
    end
  end
  return {now, allowed, t, a}
end
local tok, at, dirty = {}, {}, {}
local allowed = 1
for i = 1, n do
  local cap, int = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i + 1])
  local t, a, d = cap, now, false
  local v = redis.call("GET", KEYS[i])
  if v then
    local s = string.find(v, " ", 1, true)
    t = tonumber(string.sub(v, 1, s - 1))
    a = tonumber(string.sub(v, s + 1))
    if now - a >= int then
      local k = math.floor((now - a) / int)
      t = t + k * tonumber(ARGV[3 * i])
      a = a + k * int
      d = true
    elseif a - now > int then
      a = now
      d = true
    end
    if t >= cap then
      t = cap
      a = now
    end
  end
  if t < cost then allowed = 0 end
  tok[i], at[i], dirty[i] = t, a, d
end
local out = {now, allowed}
for i = 1, n do
  local t, a = tok[i], at[i]
  if spend and allowed == 1 then
    t = t - cost
    dirty[i] = true
  end
  if dirty[i] then
    local cap = tonumber(ARGV[3 * i - 1])
    if t >= cap then
      redis.call("DEL", KEYS[i])
    else
      local ttl = a - now + math.ceil((cap - t) / tonumber(ARGV[3 * i])) * tonumber(ARGV[3 * i + 1]) + extra
      redis.call("SET", KEYS[i], string.format("%d %d", t, a), "PX", string.format("%d", math.min(ttl, 1e13)))
    end
  end
  out[2 * i + 1] = t
  out[2 * i + 2] = a
end
return out
`;

/** SHA is the SHA-1 that `EVALSHA` names SCRIPT by; a test pins its value. */
export const SHA: string = createHash("sha1").update(SCRIPT).digest("hex");
