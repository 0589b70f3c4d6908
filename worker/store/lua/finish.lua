-- KEYS 4: the per-queue count of running jobs.
-- ARGV 6: final state, 7: result json ('' if none), 8: error json ('' if none),
-- 9: worker hostname, 10: Celery result meta key ('' to leave results to
-- Celery), 11: the meta JSON, 12: its ttl, 13: the consumed-signature marker
-- to set ('' for an unsigned call), 14: its ttl (until the signature expires),
-- 15: the database of Celery's results when it is not this one ('' if it is),
-- 16: this database (to SELECT back), 17: the key prefix, 18: the cancel
-- flag's ttl, 19: the error JSON of children it leaves behind (end_children),
-- 20: the run's delivery token ('' from outside a run).
-- Returns the state the record ends in: a record that is already terminal
-- (another process finalised it) is left as it is, so the terminal status
-- event stays the job's last event; 'superseded' when a later delivery took
-- the job over (this run's outcome is dropped).
-- include: prelude
-- The arguments, by name (the header above says what each is).
local taken = KEYS[4]
local final_state = ARGV[6]
local result_json = ARGV[7]
local error_json = ARGV[8]
local worker_name = ARGV[9]
local meta_key = ARGV[10]
local meta_json = ARGV[11]
local meta_ttl = ARGV[12]
local consumed_marker = ARGV[13]
local consumed_ttl = ARGV[14]
local meta_db = ARGV[15]
local own_db = ARGV[16]
local prefix = ARGV[17]
local cancel_ttl = ARGV[18]
local orphaned_error = ARGV[19]
local delivery = ARGV[20]

-- One read for what FINISH needs (each redis.call costs Redis beyond its command).
local f = redis.call('HMGET', job, 'state', 'delivery', 'queue', 'created_at', 'children',
                     'started_at')
local current = f[1]
if terminal(current) then
  return current
end
-- A later delivery took the job over: this run's outcome is dropped.
if delivery ~= '' and f[2] ~= delivery then return 'superseded' end
local state = final_state
if current == 'running' and f[3] then redis.call('HINCRBY', taken, f[3], -1) end
index_running(prefix, false)
local fields = {'state', state, 'finished_at', now, 'worker', worker_name,
                'created_at', f[4] or now}
local extra = ''
if result_json ~= '' then
  fields[#fields + 1] = 'result'
  fields[#fields + 1] = result_json
end
if error_json ~= '' then
  fields[#fields + 1] = 'error'
  fields[#fields + 1] = error_json
  extra = ',"error":' .. error_json
end
redis.call('HSET', job, unpack(fields))
status(state, extra)
touch()
rollup(prefix, state, f[6])
if meta_key ~= '' then
  if meta_db ~= '' then redis.call('SELECT', meta_db) end
  redis.call('SET', meta_key, meta_json, 'EX', meta_ttl)
  if meta_db ~= '' then redis.call('SELECT', own_db) end
  redis.call('PUBLISH', meta_key, meta_json)
end
if consumed_marker ~= '' and tonumber(consumed_ttl) > 0 then
  redis.call('SET', consumed_marker, '1', 'EX', consumed_ttl)
end
if f[5] then end_children(prefix, cancel_ttl, orphaned_error) end  -- children never outlive their parent
return state
