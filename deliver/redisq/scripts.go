package redisq

import "github.com/redis/go-redis/v9"

// Every key a script touches is passed in KEYS and carries the one hash tag
// of the queue ({prefix}), so each script runs on one Redis Cluster slot.
// Scripts check everything before their first write: Redis runs a script
// atomically and refuses a writing script up front when out of memory, so
// a script either applies all its writes or none.
//
// Times are Unix milliseconds. Job payloads are JSON written by Go; the
// fields that scripts change (attempt count, lease token, lease expiry)
// live in their own keys so no script re-encodes JSON.

// luaRequeue is the prelude of the scripts that return leased jobs to
// their ready set: kindKeys maps the kind names (space-separated, in
// deliver.Kinds order) to the ready keys from KEYS[first]; requeue ends a
// job's lease and makes it due at a time (a job whose JSON does not decode
// only loses its lease, and stays visible to operators).
const luaRequeue = `
local function kindKeys(names, first)
  local m, i = {}, first
  for name in string.gmatch(names, "%S+") do
    m[name] = KEYS[i]
    i = i + 1
  end
  return m
end
local function requeue(jobKey, leaseKey, leasedKey, kindKey, id, at)
  redis.call("ZREM", leasedKey, id)
  redis.call("HDEL", leaseKey, id)
  local json = redis.call("HGET", jobKey, id)
  if json then
    local ok, j = pcall(cjson.decode, json)
    local key = ok and kindKey[j["kind"]] or nil
    if key then
      redis.call("ZADD", key, at, id)
    end
  end
end
`

// commitScript records one message and its jobs, once per commit key.
//
// KEYS[1] -> {p}:job       hash  job id -> job JSON
// KEYS[2] -> {p}:msg       hash  msg id -> mail (deliver.EncodeMail, deliver.Pack)
// KEYS[3] -> {p}:raw       hash  msg id -> raw message (deliver.Pack)
// KEYS[4] -> {p}:msgjobs   hash  msg id -> jobs left
// KEYS[5] -> {p}:dedup     hash  commit key -> msg id
// KEYS[6] -> {p}:dedupexp  zset  commit key -> end of its dedup window (ms)
// KEYS[7..] -> {p}:ready:<kind> zsets, in deliver.Kinds order
// ARGV[1] -> msg id
// ARGV[2] -> mail, as stored
// ARGV[3] -> raw message, as stored
// ARGV[4] -> number of jobs
// ARGV[5] -> commit key (deliver.CommitKey)
// ARGV[6] -> now (ms)
// ARGV[7] -> dedup window (ms)
// then per job: id, kind index (1-based into KEYS[7..]), next-at ms, JSON
//
// Returns 1 when committed, 0 when the message was already queued (its id
// is held, or its commit key was committed within the window or its
// message is still held), or the error "DUPJOB <id>" (nothing written)
// when a job id is taken. Up to 20 dedup entries past their window are
// pruned per commit; one whose message is still queued gets a new window.
var commitScript = redis.NewScript(`
if redis.call("HEXISTS", KEYS[2], ARGV[1]) == 1 then
  return 0
end
local now = tonumber(ARGV[6])
local window = tonumber(ARGV[7])
local prev = redis.call("HGET", KEYS[5], ARGV[5])
if prev then
  local until_ = tonumber(redis.call("ZSCORE", KEYS[6], ARGV[5]) or "0")
  if until_ > now or redis.call("HEXISTS", KEYS[4], prev) == 1 then
    return 0
  end
end
local n = tonumber(ARGV[4])
for i = 0, n - 1 do
  local id = ARGV[8 + 4*i]
  if redis.call("HEXISTS", KEYS[1], id) == 1 then
    return redis.error_reply("DUPJOB " .. id)
  end
end
local old = redis.call("ZRANGEBYSCORE", KEYS[6], "-inf", now, "LIMIT", 0, 20)
for _, k in ipairs(old) do
  local m = redis.call("HGET", KEYS[5], k)
  if m and redis.call("HEXISTS", KEYS[4], m) == 1 then
    redis.call("ZADD", KEYS[6], now + window, k)
  else
    redis.call("HDEL", KEYS[5], k)
    redis.call("ZREM", KEYS[6], k)
  end
end
redis.call("HSET", KEYS[5], ARGV[5], ARGV[1])
redis.call("ZADD", KEYS[6], now + window, ARGV[5])
redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
redis.call("HSET", KEYS[3], ARGV[1], ARGV[3])
redis.call("HSET", KEYS[4], ARGV[1], n)
for i = 0, n - 1 do
  local id = ARGV[8 + 4*i]
  local kind = tonumber(ARGV[9 + 4*i])
  redis.call("HSET", KEYS[1], id, ARGV[11 + 4*i])
  redis.call("ZADD", KEYS[6 + kind], ARGV[10 + 4*i], id)
end
return 1
`)

// takeScript first returns expired leases to their ready set (the reaper:
// their worker died or hung), then leases up to n due jobs of the wanted
// kinds, oldest next-at first.
//
// KEYS[1] -> {p}:job     hash  job id -> job JSON
// KEYS[2] -> {p}:att     hash  job id -> attempts started
// KEYS[3] -> {p}:lease   hash  job id -> lease token
// KEYS[4] -> {p}:leased  zset  job id -> lease expiry
// KEYS[5..] -> {p}:ready:<kind> zsets, in deliver.Kinds order
// ARGV[1] -> now
// ARGV[2] -> n, jobs to take (0: only reap)
// ARGV[3] -> lease expiry for the taken jobs
// ARGV[4] -> lease token prefix (unique per call)
// ARGV[5] -> max expired leases to return in this call
// ARGV[6] -> the kind names of KEYS[5..], space-separated
// ARGV[7..] -> wanted kind indexes (1-based into KEYS[5..])
//
// Returns a flat list: id, attempts, token, job JSON, ... The attempt count
// is incremented and stored before the job is returned.
var takeScript = redis.NewScript(luaRequeue + `
local now = tonumber(ARGV[1])
local kindKey = kindKeys(ARGV[6], 5)
local expired = redis.call("ZRANGEBYSCORE", KEYS[4], "-inf", now, "LIMIT", 0, tonumber(ARGV[5]))
for _, id in ipairs(expired) do
  requeue(KEYS[1], KEYS[3], KEYS[4], kindKey, id, now)
end
local n = tonumber(ARGV[2])
local cands = {}
for a = 7, #ARGV do
  local key = KEYS[4 + tonumber(ARGV[a])]
  local r = redis.call("ZRANGEBYSCORE", key, "-inf", now, "WITHSCORES", "LIMIT", 0, n)
  for k = 1, #r, 2 do
    cands[#cands + 1] = {id = r[k], score = tonumber(r[k + 1]), key = key}
  end
end
table.sort(cands, function(x, y)
  if x.score ~= y.score then return x.score < y.score end
  return x.id < y.id
end)
local out = {}
for k = 1, math.min(n, #cands) do
  local c = cands[k]
  redis.call("ZREM", c.key, c.id)
  local json = redis.call("HGET", KEYS[1], c.id)
  -- An index entry without its job (never written so) is dropped: a nil
  -- would cut the reply short.
  if json then
    local token = ARGV[4] .. ":" .. k
    redis.call("HSET", KEYS[3], c.id, token)
    redis.call("ZADD", KEYS[4], ARGV[3], c.id)
    local att = redis.call("HINCRBY", KEYS[2], c.id, 1)
    out[#out + 1] = c.id
    out[#out + 1] = att
    out[#out + 1] = token
    out[#out + 1] = json
  end
end
return out
`)

// settleScript ends a lease: ack (delete the job, and the message with its
// last job), retry (back to ready at a time) or dead (to the dead set).
//
// KEYS[1] -> {p}:job      hash
// KEYS[2] -> {p}:att      hash
// KEYS[3] -> {p}:lease    hash
// KEYS[4] -> {p}:leased   zset
// KEYS[5] -> {p}:ready:<the job's kind> zset
// KEYS[6] -> {p}:dead     zset
// KEYS[7] -> {p}:msg      hash
// KEYS[8] -> {p}:raw      hash
// KEYS[9] -> {p}:msgjobs  hash
// ARGV[1] -> job id
// ARGV[2] -> lease token the caller holds
// ARGV[3] -> "ack", "retry" or "dead"
// ARGV[4] -> new job JSON (retry, dead)
// ARGV[5] -> score: next-at (retry) or dead-at (dead), ms
// ARGV[6] -> msg id
//
// Returns 1, or 2 for an ack that deleted the message, or the error
// "LEASELOST" (nothing written) when the caller's token is not the job's.
var settleScript = redis.NewScript(`
if redis.call("HGET", KEYS[3], ARGV[1]) ~= ARGV[2] then
  return redis.error_reply("LEASELOST")
end
redis.call("HDEL", KEYS[3], ARGV[1])
redis.call("ZREM", KEYS[4], ARGV[1])
if ARGV[3] == "retry" then
  redis.call("HSET", KEYS[1], ARGV[1], ARGV[4])
  redis.call("ZADD", KEYS[5], ARGV[5], ARGV[1])
  return 1
elseif ARGV[3] == "dead" then
  redis.call("HSET", KEYS[1], ARGV[1], ARGV[4])
  redis.call("ZADD", KEYS[6], ARGV[5], ARGV[1])
  return 1
end
redis.call("HDEL", KEYS[1], ARGV[1])
redis.call("HDEL", KEYS[2], ARGV[1])
if redis.call("HINCRBY", KEYS[9], ARGV[6], -1) <= 0 then
  redis.call("HDEL", KEYS[7], ARGV[6])
  redis.call("HDEL", KEYS[8], ARGV[6])
  redis.call("HDEL", KEYS[9], ARGV[6])
  return 2
end
return 1
`)

// dropScript deletes a job in any state, and its message with its last job.
//
// KEYS[1..9] -> as settleScript
// ARGV[1] -> job id
// ARGV[2] -> msg id
//
// Returns 1, or the error "NOTFOUND".
var dropScript = redis.NewScript(`
if redis.call("HDEL", KEYS[1], ARGV[1]) == 0 then
  return redis.error_reply("NOTFOUND")
end
redis.call("HDEL", KEYS[2], ARGV[1])
redis.call("HDEL", KEYS[3], ARGV[1])
redis.call("ZREM", KEYS[4], ARGV[1])
redis.call("ZREM", KEYS[5], ARGV[1])
redis.call("ZREM", KEYS[6], ARGV[1])
if redis.call("HINCRBY", KEYS[9], ARGV[2], -1) <= 0 then
  redis.call("HDEL", KEYS[7], ARGV[2])
  redis.call("HDEL", KEYS[8], ARGV[2])
  redis.call("HDEL", KEYS[9], ARGV[2])
end
return 1
`)

// replayScript moves a dead job to ready.
//
// KEYS[1] -> {p}:job     hash
// KEYS[2] -> {p}:dead    zset
// KEYS[3] -> {p}:ready:<the job's kind> zset
// ARGV[1] -> job id
// ARGV[2] -> new job JSON
// ARGV[3] -> now
//
// Returns 1, or the error "NOTDEAD" / "NOTFOUND" (nothing written).
var replayScript = redis.NewScript(`
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 0 then
  return redis.error_reply("NOTFOUND")
end
if redis.call("ZREM", KEYS[2], ARGV[1]) == 0 then
  return redis.error_reply("NOTDEAD")
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
redis.call("ZADD", KEYS[3], ARGV[3], ARGV[1])
return 1
`)

// releaseScript returns to the queue, at once, every job of one shard
// leased by the given node instances (a dead node's, or this node's
// previous process).
//
// KEYS[1] -> {s}:job     hash  job id -> job JSON
// KEYS[2] -> {s}:lease   hash  job id -> lease token ("tag|instance|...")
// KEYS[3] -> {s}:leased  zset  job id -> lease expiry
// KEYS[4..] -> {s}:ready:<kind> zsets, in deliver.Kinds order
// ARGV[1] -> now (ms): the released jobs are due at once
// ARGV[2] -> the kind names of KEYS[4..], space-separated
// ARGV[3..] -> instance ids
//
// Returns the number of jobs released. It reads every lease of the shard:
// there are as many as jobs in flight on all nodes, not jobs queued.
var releaseScript = redis.NewScript(luaRequeue + `
local kindKey = kindKeys(ARGV[2], 4)
local leases = redis.call("HGETALL", KEYS[2])
local n = 0
for k = 1, #leases, 2 do
  local id, token = leases[k], leases[k + 1]
  for a = 3, #ARGV do
    if string.find(token, "|" .. ARGV[a] .. "|", 1, true) then
      requeue(KEYS[1], KEYS[2], KEYS[3], kindKey, id, ARGV[1])
      n = n + 1
      break
    end
  end
end
return n
`)

// claimScript claims a one-per-queue role (the mailbox store) for a node
// instance, or renews it. A previous instance of the same node (a restart)
// is taken over; another node's live claim is refused.
//
// KEYS[1] -> {prefix}:role:<role>  string  holding instance, with a TTL
// ARGV[1] -> instance id ("node/random")
// ARGV[2] -> "node/": the node's own instances
// ARGV[3] -> TTL (ms)
//
// Returns "" when the role is this instance's, else the holder.
var claimScript = redis.NewScript(`
local cur = redis.call("GET", KEYS[1])
if not cur or cur == ARGV[1] or string.sub(cur, 1, #ARGV[2]) == ARGV[2] then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3])
  return ""
end
return cur
`)

// unclaimScript gives a role up if this instance holds it.
//
// KEYS[1] -> {prefix}:role:<role>
// ARGV[1] -> instance id
var unclaimScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
`)

// retryNowScript makes a waiting job due now, if it is still the job the
// caller read (the stored JSON is compared, so an attempt that settled in
// between is not overwritten).
//
// KEYS[1] -> {p}:job     hash
// KEYS[2] -> {p}:ready:<the job's kind> zset
// ARGV[1] -> job id
// ARGV[2] -> the job JSON read
// ARGV[3] -> the job JSON with next_at = now
// ARGV[4] -> now
//
// Returns 1, or the error "NOTFOUND" / "CHANGED" / "NOTREADY" (leased or
// dead: not in the ready set; nothing written).
var retryNowScript = redis.NewScript(`
local cur = redis.call("HGET", KEYS[1], ARGV[1])
if not cur then
  return redis.error_reply("NOTFOUND")
end
if cur ~= ARGV[2] then
  return redis.error_reply("CHANGED")
end
if not redis.call("ZSCORE", KEYS[2], ARGV[1]) then
  return redis.error_reply("NOTREADY")
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[3])
redis.call("ZADD", KEYS[2], "XX", ARGV[4], ARGV[1])
return 1
`)
