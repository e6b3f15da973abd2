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
 * A bucket is stored as 24 bytes, three big-endian doubles packed by Lua's
 * `struct` (no text to parse or format): tokens, refilledAt and `expires`,
 * the instant its key was last given to expire; 32 bytes, blockedUntil
 * added, while it is (or lately was) blocked (a block that has ended is
 * dropped the next time the bucket is read). A key must live until its
 * bucket is full again (or its block ends): `full`. A write whose `full` is
 * still within `expires` keeps the key's TTL (`SET ... KEEPTTL`: no TTL to
 * format or reset, the cheaper write); one past it sets `PX` so the key
 * lives twice as long as it needs from now (`expires = full + (full -
 * now)`, capped at 1e13 ms, about 300 years), so a client spending steadily
 * re-arms its TTL once per doubling, and a key outlives its bucket's refill
 * by at most that much. A full bucket with no block is deleted (it equals
 * a missing one). Denials and peeks that refilled nothing write nothing, so
 * a throttled client costs Redis one GET per policy. Tokens may be negative
 * (debt). Every number stays an integer below 2^53 (Lua numbers are
 * doubles, stored exactly): a refill's `k * rate` may round past 2^53, but
 * then it fills the bucket, and debt and refunds compare against the room
 * left before they add or subtract. A bucket an earlier floodgate wrote as
 * text ("tokens refilledAt [blockedUntil]": its first byte a digit or `-`,
 * which no packed double starts with) is still read, and rewritten packed.
 * Returns `{now, allowed, tokens_1, refilledAt_1, ...}` for consume
 * (`allowed` 1, 0, 2 = blocked, 3 = this denial started a block; for 2 and
 * 3 the block's end follows), `{now, dropped, ...pairs}` for adjust and
 * `{now, 2, ...pairs, blockedUntil}` for block: whole numbers, so Redis's
 * integer conversion truncates nothing; token counts within 1000 of 2^53
 * go as decimal text instead, since some clients' reply parsers (node-redis)
 * round integers that close to 2^53.
 *
 * A batch: ARGV[1] = "B", ARGV[2] = how many consumes, ARGV[3] = "1" when
 * each consume carries a test clock's reading ("0" otherwise), ARGV[4] = how
 * many policy lists ("plans") follow: each its policy count n, its width w
 * (3 or 5) and its n * w numbers as above, made numbers once per call. Then
 * each consume: the number of its plan (from 1), its operation as ARGV[1]
 * above and, when ARGV[3] is "1", its clock reading. Its n keys follow the
 * keys of the consumes before it in KEYS. Each is decided in turn by the
 * same code, under pcall, so one that fails (a key of another type) comes
 * back as its own error in the reply's array and the others stand; the
 * reply is the array of their replies. `TIME` is read once per call.
 *
 * A refilledAt more than one interval ahead of `now` (Redis TIME stepped
 * back) is clamped to `now` and written, as src/core/bucket.ts does.
 *
 * Every path reads and refills a bucket with `load` (packed or text, a
 * block that has ended dropped) and writes it with `save`. A consume that
 * no block in force concerns (the common case) takes a short path, with no
 * Lua table for one policy (several: when no policy has blockFor); a block
 * in force, adjust and block go the general way. Policies' numbers arrive as decimal text and become Lua
 * numbers once per call (`ARGV[i] + 0`, about 60 ns in Redis 7.0, rather
 * than `tonumber`, about 165 ns); numbers go back to Redis as text
 * (`string.format`): a Lua number passed to `redis.call` costs Redis more to
 * convert. Measured with `INFO commandstats`: a call costs Redis about 4 us
 * whatever it decides (EVALSHA itself ~1.4, TIME ~0.6, the rest Lua), each
 * consume about 2.4 us more with one policy, 4.5 with two (GET or MGET, SET
 * KEEPTTL, the arithmetic).
 */
export const SCRIPT = `local none = -math.huge
local function load(v, cap, rate, int, now)
  if not v then return cap, now, none, none, false end
  local t, a, x, b, d = nil, nil, none, none, false
  local c1 = string.byte(v)
  if c1 >= 45 and c1 <= 57 then
    local s = string.find(v, " ", 1, true)
    local e = string.find(v, " ", s + 1, true)
    t = tonumber(string.sub(v, 1, s - 1))
    if e then
      a = tonumber(string.sub(v, s + 1, e - 1))
      b = tonumber(string.sub(v, e + 1))
    else
      a = tonumber(string.sub(v, s + 1))
    end
  elseif #v == 32 then
    t, a, x, b = struct.unpack(">dddd", v)
  else
    t, a, x = struct.unpack(">ddd", v)
  end
  if b <= now and b ~= none then
    b = none
    d = true
  end
  if now - a >= int then
    local k = math.floor((now - a) / int)
    t = t + k * rate
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
  return t, a, x, b, d
end
local function save(key, t, a, x, b, cap, rate, int, now, extra, nx)
  if t >= cap and b <= now then
    if not nx then redis.call("DEL", key) end
    return true
  end
  local full = a + math.ceil((cap - t) / rate) * int
  if b > full then full = b end
  local keep = x and full <= x
  if not keep then x = math.min(full + full - now, now + 1e13) end
  local state
  if b > now then state = struct.pack(">dddd", t, a, x, b) else state = struct.pack(">ddd", t, a, x) end
  if keep then
    redis.call("SET", key, state, "KEEPTTL")
  elseif nx then
    return redis.call("SET", key, state, "PX", string.format("%d", x - now + extra), "NX")
  else
    redis.call("SET", key, state, "PX", string.format("%d", x - now + extra))
  end
  return true
end
local function foreign()
  return redis.error_reply("WRONGTYPE Operation against a key holding the wrong kind of value")
end
local function decide(kb, n, w, P, op, now, extra)
  local cost = tonumber(op)
  local spend = cost and cost > 0
  if cost and not spend then cost = -cost end
  if cost and (w == 3 or n == 1) then
    if n == 1 then
      local key, cap, rate, int = KEYS[kb + 1], P[1], P[2], P[3]
      local t, a, x, b, d = load(redis.call("GET", key), cap, rate, int, now)
      if b == none then
        local allowed = 0
        if t >= cost then
          allowed = 1
          if spend then
            t = t - cost
            d = true
          end
        end
        if allowed == 1 or not spend or w == 3 then
          if d then save(key, t, a, x, none, cap, rate, int, now, extra) end
          if t > 9007199254740000 or t < -9007199254740000 then t = string.format("%d", t) end
          return {now, allowed, t, a}
        end
      end
    else
      local vals = redis.call("MGET", unpack(KEYS, kb + 1, kb + n))
      -- Built at their final size: a table that grows is rehashed on the way.
      local out, ex
      if n == 2 then
        out, ex = {now, 1, 0, 0, 0, 0}, {0, 0, 0, 0}
      elseif n == 3 then
        out, ex = {now, 1, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}
      else
        out, ex = {now, 1}, {}
      end
      for i = 1, n do
        local j = 3 * i
        local t, a, x, b, d = load(vals[i], P[j - 2], P[j - 1], P[j], now)
        if b ~= none then
          out = nil
          break
        end
        if t < cost then out[2] = 0 end
        out[2 * i + 1], out[2 * i + 2], ex[i], ex[n + i] = t, a, x, d
      end
      if out then
        local take = spend and out[2] == 1
        if take then
          for i = 1, n do
            if not vals[i] then
              local j = 3 * i
              if not save(KEYS[kb + i], out[2 * i + 1] - cost, out[2 * i + 2], none, none, P[j - 2], P[j - 1], P[j], now, extra, true) then
                -- Every missing bucket before this one was created just now.
                for k = 1, i - 1 do
                  if not vals[k] then redis.call("DEL", KEYS[kb + k]) end
                end
                return foreign()
              end
            end
          end
        end
        for i = 1, n do
          local t = out[2 * i + 1]
          if take then t = t - cost end
          if (take and vals[i]) or ex[n + i] then
            local j = 3 * i
            save(KEYS[kb + i], t, out[2 * i + 2], ex[i], none, P[j - 2], P[j - 1], P[j], now, extra)
          end
          if t > 9007199254740000 or t < -9007199254740000 then t = string.format("%d", t) end
          out[2 * i + 1] = t
        end
        return out
      end
    end
  end
  local vals
  if n == 1 then
    vals = {redis.call("GET", KEYS[kb + 1])}
  else
    vals = redis.call("MGET", unpack(KEYS, kb + 1, kb + n))
  end
  local out, ex, blk, dirty = {now, 0}, {}, {}, {}
  local blocked, ends = none, nil
  for i = 1, n do
    local j = w * i - w
    local t, a, x, b, d = load(vals[i], P[j + 1], P[j + 2], P[j + 3], now)
    out[2 * i + 1], out[2 * i + 2], ex[i], blk[i], dirty[i] = t, a, x, b, d
    if b > blocked then blocked = b end
  end
  if cost then
    local allowed = 1
    if blocked > now then
      allowed = 2
      ends = blocked
      for i = 1, n do dirty[i] = false end
    else
      for i = 1, n do
        if out[2 * i + 1] < cost then allowed = 0 end
      end
      for i = 1, n do
        if spend and allowed == 1 then
          out[2 * i + 1] = out[2 * i + 1] - cost
          dirty[i] = true
        elseif spend and allowed == 0 and out[2 * i + 1] < cost and w == 5 then
          local bf = P[5 * i]
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
    end
    out[2] = allowed
  else
    local kind = string.sub(op, 1, 1)
    local amount = tonumber(string.sub(op, 2))
    if kind == "b" then
      ends = math.max(now + amount, blocked)
      out[2] = 2
    end
    for i = 1, n do
      local t = out[2 * i + 1]
      if kind == "b" then
        blk[i] = ends
      elseif amount >= 0 then
        local room = t + P[5 * i - 1]
        if amount <= room then
          t = t - amount
        elseif room > 0 then
          if amount - room > out[2] then out[2] = amount - room end
          t = -P[5 * i - 1]
        elseif amount > out[2] then
          out[2] = amount
        end
      elseif -amount >= P[5 * i - 4] - t then
        t = P[5 * i - 4]
        out[2 * i + 2] = now
      else
        t = t - amount
      end
      out[2 * i + 1] = t
      dirty[i] = true
    end
  end
  for i = 1, n do
    if dirty[i] and not vals[i] then
      local j = w * i - w
      if not save(KEYS[kb + i], out[2 * i + 1], out[2 * i + 2], none, blk[i], P[j + 1], P[j + 2], P[j + 3], now, extra, true) then
        -- Every missing bucket before this one was created just now (or was full and left out).
        for k = 1, i - 1 do
          if dirty[k] and not vals[k] then redis.call("DEL", KEYS[kb + k]) end
        end
        return foreign()
      end
    end
  end
  for i = 1, n do
    local t = out[2 * i + 1]
    if dirty[i] and vals[i] then
      local j = w * i - w
      save(KEYS[kb + i], t, out[2 * i + 2], ex[i], blk[i], P[j + 1], P[j + 2], P[j + 3], now, extra)
    end
    if t > 9007199254740000 or t < -9007199254740000 then out[2 * i + 1] = string.format("%d", t) end
  end
  if out[2] > 9007199254740000 then out[2] = string.format("%d", out[2]) end
  if ends then out[2 * n + 3] = ends end
  return out
end
local extra = 0
if ARGV[1] ~= "B" then
  local n, na = #KEYS, #ARGV
  local w = 5
  if na == 3 * n + 1 or na == 3 * n + 2 then w = 3 end
  local P = {unpack(ARGV, 2, w * n + 1)}
  for i = 1, w * n do P[i] = P[i] + 0 end
  local now
  if na == w * n + 2 then
    now, extra = ARGV[na] + 0, 60000
  else
    local c = redis.call("TIME")
    now = c[1] * 1000 + math.floor(c[2] / 1000)
  end
  return decide(0, n, w, P, ARGV[1], now, extra)
end
local count, clocked = ARGV[2] + 0, ARGV[3] == "1"
local plans, ns, ws, ai = {}, {}, {}, 5
for p = 1, ARGV[4] + 0 do
  local n, w = ARGV[ai] + 0, ARGV[ai + 1] + 0
  local P = {unpack(ARGV, ai + 2, ai + 1 + n * w)}
  for i = 1, n * w do P[i] = P[i] + 0 end
  plans[p], ns[p], ws[p] = P, n, w
  ai = ai + 2 + n * w
end
local now
if clocked then
  extra = 60000
else
  local c = redis.call("TIME")
  now = c[1] * 1000 + math.floor(c[2] / 1000)
end
local replies, kb = {}, 0
for d = 1, count do
  local p = ARGV[ai] + 0
  local n, P, op = ns[p], plans[p], ARGV[ai + 1]
  if clocked then
    now = ARGV[ai + 2] + 0
    ai = ai + 3
  else
    ai = ai + 2
  end
  local ok, r = pcall(decide, kb, n, ws[p], P, op, now, extra)
  if ok or type(r) == "table" then
    replies[d] = r
  else
    replies[d] = {err = tostring(r)}
  end
  kb = kb + n
end
return replies
`;

/** SHA is the SHA-1 that `EVALSHA` names SCRIPT by; a test pins its value. */
export const SHA: string = createHash("sha1").update(SCRIPT).digest("hex");
