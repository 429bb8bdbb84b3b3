"""The Lua scripts behind every change of a job's state, each atomic in Redis.

One script per transition, so two workers racing on a reclaimed job can never both complete it,
and each token index enters the job's log at most once.
"""

# KEYS[4] holds the owner's live (queued or running) job ids, pruned here of jobs that ended, so
# a caller's cap (ARGV[10], 0: none) counts every replica's submissions and heals itself.
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
if ARGV[5] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[9]) end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
return {1, ARGV[2]}
"""

BEGIN = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'running', 'updated_ms', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
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
# group, then field/value pairs to set. Returns {1, new state} when it ended the job, {0, its
# state} when the job had already left `from` states, nil when the job is gone.
END = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
if not string.find(',' .. ARGV[6] .. ',', ',' .. state .. ',', 1, true) then return {0, state} end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_ms', ARGV[4])
for i = 8, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local tokens = redis.call('HGET', KEYS[1], 'tokens')
redis.call('XADD', KEYS[2], '*', 'n', tokens, 'k', ARGV[2], 'e', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
local msg = redis.call('HGET', KEYS[1], 'message_id')
redis.call('XACK', KEYS[3], ARGV[7], msg)
redis.call('XDEL', KEYS[3], msg)
return {1, ARGV[1]}
"""
