import { createHash } from "node:crypto";

/**
 * SCRIPT decides one request against every policy's bucket of one client,
 * atomically, with the same integer arithmetic as src/core/bucket.ts (the
 * shared test vectors run against both).
 *
 * KEYS[i]   the bucket of policy i for this client, `prefix:{id}:name`; all
 *           keys of one call share the `{id}` hash tag, so one Cluster slot.
 * ARGV[1]   cost: whole tokens to spend, 1 .. smallest capacity.
 * ARGV[2]   "1" to spend when every bucket has `cost` tokens, "0" only to look
 *           (peek: only a refill is written, as the memory store does, so a
 *           clock that later steps back finds the same state in both).
 * ARGV[3]   "" to read the clock from Redis `TIME` (production: one clock
 *           for every instance, no skew); epoch ms to inject a clock (tests
 *           only; keys then get a minute of extra TTL, since real time no
 *           longer matches the injected one).
 * ARGV[3i+1], ARGV[3i+2], ARGV[3i+3]
 *           policy i's capacity, refillRate and interval (ms), integers.
 *
 * A bucket is stored as the string "tokens refilledAt" with `PX` = the ms
 * until it is full again (capped at 1e13 ms, about 300 years); a full bucket
 * is deleted (it equals a missing one). Denials and peeks that refilled
 * nothing write nothing, so a throttled client costs Redis one GET per policy.
 * Returns `{now, allowed, tokens_1, refilledAt_1, ...}`: whole numbers, so
 * Redis's integer conversion truncates nothing.
 */
export const SCRIPT = `local cost = tonumber(ARGV[1])
local spend = ARGV[2] == "1"
local now
if ARGV[3] == "" then
  local t = redis.call("TIME")
  now = t[1] * 1000 + math.floor(t[2] / 1000)
else
  now = tonumber(ARGV[3])
end
local n = #KEYS
local caps, tok, at, dirty = {}, {}, {}, {}
local allowed = 1
for i = 1, n do
  local cap, rate, int = tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3])
  local t, a, d = cap, now, false
  local v = redis.call("GET", KEYS[i])
  if v then
    local s = string.find(v, " ", 1, true)
    t = tonumber(string.sub(v, 1, s - 1))
    a = tonumber(string.sub(v, s + 1))
    local elapsed = now - a
    if elapsed >= int then
      local k = math.floor(elapsed / int)
      t = math.min(cap, t + k * rate)
      a = a + k * int
      d = true
    end
    if t >= cap then
      t = cap
      a = now
    end
  end
  if t < cost then allowed = 0 end
  caps[i], tok[i], at[i], dirty[i] = cap, t, a, d
end
local out = {now, allowed}
for i = 1, n do
  local t, a = tok[i], at[i]
  if spend and allowed == 1 then
    t = t - cost
    dirty[i] = true
  end
  if dirty[i] then
    local cap = caps[i]
    if t >= cap then
      redis.call("DEL", KEYS[i])
    else
      local rate, int = tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3])
      local ttl = a - now + math.ceil((cap - t) / rate) * int
      if ARGV[3] ~= "" then ttl = ttl + 60000 end
      redis.call("SET", KEYS[i], t .. " " .. a, "PX", string.format("%d", math.min(ttl, 1e13)))
    end
  end
  out[2 * i + 1] = t
  out[2 * i + 2] = a
end
return out
`;

/** SHA is the SHA-1 that `EVALSHA` names SCRIPT by; a test pins its value. */
export const SHA: string = createHash("sha1").update(SCRIPT).digest("hex");
