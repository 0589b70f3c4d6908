-- A failed attempt that will run again. KEYS 1-3 as every job script, 4: the
-- per-queue count of running jobs. ARGV 6: the attempt's error JSON, 7: when
-- the next attempt runs (Unix seconds), 8: retries scheduled so far, this one
-- included, 9: the key prefix, 10: the cancel flag's ttl, 11: the error JSON
-- of children it leaves behind, 12: the run's delivery token. Appends the error to ``errors`` (every
-- attempt's, in order) and emits a ``retrying`` status. Returns the state the
-- record is in: ``retrying``, the terminal state another process set, or
-- ``superseded`` (a later delivery took the job over).
-- include: prelude
-- The arguments, by name (the header above says what each is).
local taken = KEYS[4]
local error_json = ARGV[6]
local next_run_at = ARGV[7]
local retries_so_far = ARGV[8]
local prefix = ARGV[9]
local cancel_ttl = ARGV[10]
local orphaned_error = ARGV[11]
local delivery = ARGV[12]

local current = redis.call('HGET', job, 'state')
if current ~= 'running' then return current or 'missing' end
if superseded(delivery) then return 'superseded' end
local queue = redis.call('HGET', job, 'queue')
if queue then redis.call('HINCRBY', taken, queue, -1) end
index_running(prefix, false)
local errors = redis.call('HGET', job, 'errors')
if errors and errors ~= '[]' then
  errors = string.sub(errors, 1, -2) .. ',' .. error_json .. ']'
else
  errors = '[' .. error_json .. ']'
end
redis.call('HSET', job, 'state', 'retrying', 'retries', retries_so_far, 'next_run_at', next_run_at,
           'errors', errors)
status('retrying', ',"attempt":' .. (tonumber(retries_so_far) + 1) .. ',"next_run_at":' .. next_run_at
       .. ',"error":' .. error_json)
touch()
end_children(prefix, cancel_ttl, orphaned_error)
return 'retrying'
