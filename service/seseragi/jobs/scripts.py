"""The Lua scripts behind every change of a job's state, each atomic in Redis.

One script per transition, so two workers racing on a reclaimed job can never both complete it,
and each token index enters the job's log at most once.
"""

# KEYS[4] holds the owner's live (queued or running) job ids, pruned here of jobs that ended, so
# a caller's cap (ARGV[10], 0: none) counts every replica's submissions and heals itself.
# KEYS[3], the owner's index, loses the oldest expired jobs on each submission and expires
# ARGV[9] seconds after the owner's last submission or ended job. The idempotency key (KEYS[2])
# lives as long as its job: it expires with it, in END.
SUBMIT = """
if ARGV[5] ~= '' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return {0, existing} end
end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[6]) then return {-1, ''} end
if tonumber(ARGV[10]) > 0 then
  local live = 0
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    local state = redis.call('HGET', ARGV[1] .. 'job:' .. id, 'state')
    if state == 'queued' or state == 'running' then live = live + 1
    else redis.call('SREM', KEYS[4], id) end
  end
  if live >= tonumber(ARGV[10]) then return {-2, ''} end
  redis.call('SADD', KEYS[4], ARGV[2])
  redis.call('EXPIRE', KEYS[4], ARGV[9])
end
local job = ARGV[1] .. 'job:' .. ARGV[2]
local msg = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
redis.call('HSET', job, 'owner', ARGV[3], 'state', 'queued', 'request', ARGV[7],
  'started', ARGV[8], 'created_ms', ARGV[4], 'updated_ms', ARGV[4], 'tokens', 0,
  'attempts', 0, 'idempotency_key', ARGV[5], 'message_id', msg)
if ARGV[5] ~= '' then redis.call('SET', KEYS[2], ARGV[2]) end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, 7)) do
  if redis.call('EXISTS', ARGV[1] .. 'job:' .. id) == 0 then redis.call('ZREM', KEYS[3], id) end
end
redis.call('EXPIRE', KEYS[3], ARGV[9])
return {1, ARGV[2]}
"""

# ARGV: now, max attempts, what a silent worker's attempt is recorded as. Returns 1 when a new
# attempt began, 0 when the job needs no work, -1 when it has used every attempt. A job found
# running is being taken over from a silent worker: unless that attempt noted its own error, its
# silence is its error.
BEGIN = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
local noted = redis.call('HGET', KEYS[1], 'last_error_attempt')
if state == 'running' and noted ~= tostring(attempts) then
  redis.call('HSET', KEYS[1], 'last_error_code', 'ABORTED', 'last_error_attempt', attempts,
    'last_error_message', 'attempt ' .. attempts .. ': ' .. ARGV[3])
end
if attempts >= tonumber(ARGV[2]) then return -1 end
redis.call('HSET', KEYS[1], 'state', 'running', 'updated_ms', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return 1
"""

# ARGV: code, message. Records the running attempt's error, for the job's last error.
NOTE_ERROR = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
local attempts = redis.call('HGET', KEYS[1], 'attempts')
redis.call('HSET', KEYS[1], 'last_error_code', ARGV[1], 'last_error_message',
  'attempt ' .. attempts .. ': ' .. ARGV[2], 'last_error_attempt', attempts)
return 1
"""

APPEND = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return -1 end
if tonumber(ARGV[1]) <= tonumber(redis.call('HGET', KEYS[1], 'tokens')) then return 0 end
redis.call('HSET', KEYS[1], 'tokens', ARGV[1], 'updated_ms', ARGV[3])
redis.call('XADD', KEYS[2], '*', 'n', ARGV[1], 'k', 'delta', 'e', ARGV[2])
return 1
"""

# ARGV: new state, event kind, event bytes, now, ttl, states it may end from (comma list),
# group, key prefix, then field/value pairs to set. Returns {1, new state} when it ended the
# job, {0, its state} when the job had already left `from` states, nil when the job is gone.
# Every key of the job gets the TTL now: its hash, its log, its idempotency key, and the
# owner's index (refreshed), so nothing of an ended job outlives it.
END = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
if not string.find(',' .. ARGV[6] .. ',', ',' .. state .. ',', 1, true) then return {0, state} end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_ms', ARGV[4])
for i = 9, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local tokens = redis.call('HGET', KEYS[1], 'tokens')
redis.call('XADD', KEYS[2], '*', 'n', tokens, 'k', ARGV[2], 'e', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
local owner = redis.call('HGET', KEYS[1], 'owner')
local key = redis.call('HGET', KEYS[1], 'idempotency_key')
if key and key ~= '' then
  redis.call('EXPIRE', ARGV[8] .. 'idem:' .. owner .. ':' .. key, ARGV[5])
end
redis.call('EXPIRE', ARGV[8] .. 'owner:' .. owner .. ':jobs', ARGV[5])
redis.call('SREM', ARGV[8] .. 'owner:' .. owner .. ':live', string.sub(KEYS[1], #ARGV[8] + 5))
local msg = redis.call('HGET', KEYS[1], 'message_id')
redis.call('XACK', KEYS[3], ARGV[7], msg)
redis.call('XDEL', KEYS[3], msg)
return {1, ARGV[1]}
"""
