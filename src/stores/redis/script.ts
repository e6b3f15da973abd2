import { createHash } from "node:crypto";

/**
 * SCRIPT runs one operation on every policy's bucket of one client,
 * atomically, with the same integer arithmetic as src/core/bucket.ts (the
 * shared test vectors run against both).
 *
 * KEYS[i]   the bucket of policy i for this client, `prefix:{id}:name`; all
 *           keys of one call share the `{id}` hash tag, so one Cluster slot.
 * ARGV[1]   the operation:
 *           - a number: consume. The cost, whole tokens from 1 to the smallest
 *             capacity: positive to spend it when every bucket holds it,
 *             negative only to look (peek: only a refill is written, as the
 *             memory store does, so a clock that later steps back finds the
 *             same state in both).
 *           - `a<delta>`: adjust after the fact (settle, refund): take `delta`
 *             tokens (down to -maxDebt, the rest dropped) or, negative, give
 *             them back (up to capacity).
 *           - `b<ms>`: block the key for `ms` from now (never shortening a
 *             block in force).
 * ARGV[wi-w+2] .. ARGV[wi+1]
 *           policy i's capacity, refillRate, interval (ms), maxDebt and
 *           blockFor (ms, 0 for none), integers: w = 5 fields each, or w = 3
 *           (the first three) for a consume when no policy has blockFor, so
 *           the common call carries no more than it did before debt and
 *           blocks. The count of ARGV tells which (3n+1 or 3n+2: w = 3).
 * ARGV[wn+2] absent in production: the clock is Redis `TIME` (one clock for
 *           every instance, no skew). Tests only: epoch ms to inject a clock;
 *           keys then get a minute of extra TTL, since real time no longer
 *           matches the injected one.
 *
 * A bucket is stored as the string "tokens refilledAt", or "tokens
 * refilledAt blockedUntil" while it is (or lately was) blocked (a block
 * that has ended is dropped the next time the bucket is read), with `PX` =
 * the ms until it is full again or its block ends, whichever is later
 * (capped at 1e13 ms, about 300 years); a full bucket with no block is
 * deleted (it equals a missing one). Denials and peeks that refilled
 * nothing write nothing, so a throttled client costs Redis one GET per
 * policy. Tokens may be negative (debt). Every number stays an integer
 * below 2^53 (Lua numbers are doubles): a refill's `k * rate` may round
 * past 2^53, but then it fills the bucket, and debt and refunds compare
 * against the room left before they add or subtract.
 * Returns `{now, allowed, tokens_1, refilledAt_1, ...}` for consume
 * (`allowed` 1, 0, 2 = blocked, 3 = this denial started a block; for 2 and
 * 3 the block's end follows), `{now, dropped, ...pairs}` for adjust and
 * `{now, 2, ...pairs, blockedUntil}` for block: whole numbers, so Redis's
 * integer conversion truncates nothing; token counts within 1000 of 2^53
 * go as decimal text instead, since some clients' reply parsers (node-redis)
 * round integers that close to 2^53.
 *
 * A refilledAt more than one interval ahead of `now` (Redis TIME stepped
 * back) is clamped to `now` and written, as src/core/bucket.ts does.
 *
 * One policy consuming, the common case, takes a path with no Lua tables,
 * and a spend that refilled nothing writes back the stored refilledAt text
 * as it was (each number Lua turns into text costs Redis a fraction of a
 * microsecond); a bucket with a block field goes the general way. Of the
 * script's time in Redis about two fifths is Lua; the rest is EVALSHA
 * itself, TIME, GET and SET.
 */
export const SCRIPT = `local n = #KEYS
local cost = tonumber(ARGV[1])
local w = 5
local na = #ARGV
if na == 3 * n + 1 or na == 3 * n + 2 then w = 3 end
local now, extra
local clock = ARGV[w * n + 2]
if clock then
  now = tonumber(clock)
  extra = 60000
else
  local c = redis.call("TIME")
  now = c[1] * 1000 + math.floor(c[2] / 1000)
  extra = 0
end
local spend = cost and cost > 0
if cost and not spend then cost = -cost end
if cost and n == 1 then
  local key = KEYS[1]
  local cap = tonumber(ARGV[2])
  local t, a, at, dirty = cap, now, nil, false
  local v = redis.call("GET", key)
  local plain = true
  if v then
    local s = string.find(v, " ", 1, true)
    t = tonumber(string.sub(v, 1, s - 1))
    at = string.sub(v, s)
    a = tonumber(at)
    plain = a ~= nil
  end
  if plain then
    if v then
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
    if allowed == 1 or not spend or w == 3 or ARGV[6] == "0" then
      if dirty then
        if t >= cap then
          redis.call("DEL", key)
        else
          local ttl = a - now + math.ceil((cap - t) / tonumber(ARGV[3])) * tonumber(ARGV[4]) + extra
          local state = at and string.format("%d%s", t, at) or string.format("%d %d", t, a)
          redis.call("SET", key, state, "PX", string.format("%d", math.min(ttl, 1e13)))
        end
      end
      if t > 9007199254740000 or t < -9007199254740000 then t = string.format("%d", t) end
      return {now, allowed, t, a}
    end
  end
end
local none = -math.huge
local function load(i)
  local cap, int = tonumber(ARGV[w * i - w + 2]), tonumber(ARGV[w * i - w + 4])
  local t, a, b, d = cap, now, none, false
  local v = redis.call("GET", KEYS[i])
  if v then
    local s = string.find(v, " ", 1, true)
    local e = string.find(v, " ", s + 1, true)
    t = tonumber(string.sub(v, 1, s - 1))
    if e then
      a = tonumber(string.sub(v, s + 1, e - 1))
      b = tonumber(string.sub(v, e + 1))
      if b <= now then
        b = none
        d = true
      end
    else
      a = tonumber(string.sub(v, s + 1))
    end
    if now - a >= int then
      local k = math.floor((now - a) / int)
      t = t + k * tonumber(ARGV[w * i - w + 3])
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
  return t, a, b, d
end
local function save(i, t, a, b)
  local cap, rate, int = tonumber(ARGV[w * i - w + 2]), tonumber(ARGV[w * i - w + 3]), tonumber(ARGV[w * i - w + 4])
  local ttl = a - now + math.ceil((cap - t) / rate) * int
  local state
  if b > now then
    if b - now > ttl then ttl = b - now end
    state = string.format("%d %d %d", t, a, b)
  elseif t >= cap then
    redis.call("DEL", KEYS[i])
    return
  else
    state = string.format("%d %d", t, a)
  end
  redis.call("SET", KEYS[i], state, "PX", string.format("%d", math.min(ttl + extra, 1e13)))
end
local tok, at, blk, dirty = {}, {}, {}, {}
local blocked, ends = none, nil
for i = 1, n do
  local t, a, b, d = load(i)
  tok[i], at[i], blk[i], dirty[i] = t, a, b, d
  if b > blocked then blocked = b end
end
local out = {now, 0}
if cost then
  local allowed = 1
  if blocked > now then
    allowed = 2
    ends = blocked
  else
    for i = 1, n do
      if tok[i] < cost then allowed = 0 end
    end
    for i = 1, n do
      if spend and allowed == 1 then
        tok[i] = tok[i] - cost
        dirty[i] = true
      elseif spend and allowed == 0 and tok[i] < cost and w == 5 then
        local bf = tonumber(ARGV[5 * i + 1])
        if bf > 0 and (not ends or now + bf > ends) then ends = now + bf end
      end
    end
    if ends then
      allowed = 3
      for i = 1, n do
        blk[i] = ends
        dirty[i] = true
      end
    end
    for i = 1, n do
      if dirty[i] then save(i, tok[i], at[i], blk[i]) end
    end
  end
  out[2] = allowed
else
  local kind = string.sub(ARGV[1], 1, 1)
  local amount = tonumber(string.sub(ARGV[1], 2))
  if kind == "b" then
    ends = math.max(now + amount, blocked)
    out[2] = 2
  end
  for i = 1, n do
    local t = tok[i]
    if kind == "b" then
      blk[i] = ends
    elseif amount >= 0 then
      local room = t + tonumber(ARGV[5 * i])
      if amount <= room then
        t = t - amount
      elseif room > 0 then
        if amount - room > out[2] then out[2] = amount - room end
        t = -tonumber(ARGV[5 * i])
      elseif amount > out[2] then
        out[2] = amount
      end
    elseif -amount >= tonumber(ARGV[5 * i - 3]) - t then
      t = tonumber(ARGV[5 * i - 3])
      at[i] = now
    else
      t = t - amount
    end
    tok[i] = t
    save(i, t, at[i], blk[i])
  end
end
local function exact(x)
  if x > 9007199254740000 or x < -9007199254740000 then return string.format("%d", x) end
  return x
end
out[2] = exact(out[2])
for i = 1, n do
  out[2 * i + 1] = exact(tok[i])
  out[2 * i + 2] = at[i]
end
if ends then out[2 * n + 3] = ends end
return out
`;

/** SHA is the SHA-1 that `EVALSHA` names SCRIPT by; a test pins its value. */
export const SHA: string = createHash("sha1").update(SCRIPT).digest("hex");
