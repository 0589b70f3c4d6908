-- KEYS 4: cancel flag. ARGV 6: cancel channel, 7: job id, 8: flag ttl, 9: "1"
-- to set the flag even for a job with no record yet (a revoke of a raw
-- producer's job that no worker has received), 10: the key prefix. A queued
-- job is finalised at once (START then refuses to run it); a running one is
-- flagged and its id published to the worker processes. Either way its
-- unfinished descendants (children of ``ctx.call``, theirs, ...) are cancelled
-- the same way (``end_children``). Returns "missing", "finished",
-- "cancelled" (was queued) or "cancelling" (was running).
-- include: prelude
-- The arguments, by name (the header above says what each is).
local cancel_flag = KEYS[4]
local cancel_channel = ARGV[6]
local job_id = ARGV[7]
local flag_ttl = ARGV[8]
local force = ARGV[9]
local prefix = ARGV[10]

local state = redis.call('HGET', job, 'state')
if not state and force ~= '1' then return 'missing' end
if terminal(state) then return 'finished' end
redis.call('SET', cancel_flag, '1', 'EX', flag_ttl)
end_children(prefix, flag_ttl, nil)
if state == 'queued' or state == 'retrying' or state == 'input_required' then
  -- Waiting (to start, or for its retry): no worker holds it, so it ends here;
  -- a delivery that comes later finds it finished and runs nothing.
  redis.call('HSET', job, 'state', 'cancelled', 'finished_at', now)
  redis.call('HDEL', job, 'next_run_at')
  status('cancelled')
  touch()
  rollup(prefix, 'cancelled')
  return 'cancelled'
end
redis.call('PUBLISH', cancel_channel, job_id)
return 'cancelling'
