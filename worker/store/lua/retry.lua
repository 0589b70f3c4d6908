-- A failed attempt that will run again. KEYS 1-3 as every job script, 4: the
-- per-queue count of running jobs. ARGV 6: the attempt's error JSON, 7: when
-- the next attempt runs (Unix seconds), 8: retries scheduled so far, this one
-- included, 9: the key prefix, 10: the cancel flag's ttl, 11: the error JSON
-- of children it leaves behind. Appends the error to ``errors`` (every
-- attempt's, in order) and emits a ``retrying`` status. Returns the state the
-- record is in: ``retrying``, or the terminal state another process set.
-- include: prelude

local current = redis.call('HGET', job, 'state')
if current ~= 'running' then return current or 'missing' end
local queue = redis.call('HGET', job, 'queue')
if queue then redis.call('HINCRBY', KEYS[4], queue, -1) end
index_running(ARGV[9], false)
local errors = redis.call('HGET', job, 'errors')
if errors and errors ~= '[]' then
  errors = string.sub(errors, 1, -2) .. ',' .. ARGV[6] .. ']'
else
  errors = '[' .. ARGV[6] .. ']'
end
redis.call('HSET', job, 'state', 'retrying', 'retries', ARGV[8], 'next_run_at', ARGV[7],
           'errors', errors)
status('retrying', ',"attempt":' .. (tonumber(ARGV[8]) + 1) .. ',"next_run_at":' .. ARGV[7]
       .. ',"error":' .. ARGV[6])
touch()
end_children(ARGV[9], ARGV[10], ARGV[11])
return 'retrying'
