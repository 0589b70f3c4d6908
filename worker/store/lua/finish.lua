-- KEYS 4: the per-queue count of running jobs.
-- ARGV 6: final state, 7: result json ('' if none), 8: error json ('' if none),
-- 9: worker hostname, 10: Celery result meta key ('' to leave results to
-- Celery), 11: the meta JSON, 12: its ttl, 13: the consumed-signature marker
-- to set ('' for an unsigned call), 14: its ttl (until the signature expires),
-- 15: the database of Celery's results when it is not this one ('' if it is),
-- 16: this database (to SELECT back), 17: the key prefix, 18: the cancel
-- flag's ttl, 19: the error JSON of children it leaves behind (end_children).
-- Returns the state the record ends in: a record that is already terminal
-- (another process finalised it) is left as it is, so the terminal status
-- event stays the job's last event.
-- include: prelude

local current = redis.call('HGET', job, 'state')
if terminal(current) then
  return current
end
local state = ARGV[6]
if current == 'running' then
  local queue = redis.call('HGET', job, 'queue')
  if queue then redis.call('HINCRBY', KEYS[4], queue, -1) end
end
index_running(ARGV[17], false)
redis.call('HSETNX', job, 'created_at', now)
redis.call('HSET', job, 'state', state, 'finished_at', now, 'worker', ARGV[9])
local extra = ''
if ARGV[7] ~= '' then redis.call('HSET', job, 'result', ARGV[7]) end
if ARGV[8] ~= '' then
  redis.call('HSET', job, 'error', ARGV[8])
  extra = ',"error":' .. ARGV[8]
end
status(state, extra)
touch()
if ARGV[10] ~= '' then
  if ARGV[15] ~= '' then redis.call('SELECT', ARGV[15]) end
  redis.call('SET', ARGV[10], ARGV[11], 'EX', ARGV[12])
  if ARGV[15] ~= '' then redis.call('SELECT', ARGV[16]) end
  redis.call('PUBLISH', ARGV[10], ARGV[11])
end
if ARGV[13] ~= '' and tonumber(ARGV[14]) > 0 then
  redis.call('SET', ARGV[13], '1', 'EX', ARGV[14])
end
end_children(ARGV[17], ARGV[18], ARGV[19])  -- children never outlive their parent
return state
