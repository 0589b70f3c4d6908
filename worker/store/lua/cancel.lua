-- KEYS 4: cancel flag. ARGV 6: cancel channel, 7: job id, 8: flag ttl, 9: "1"
-- to set the flag even for a job with no record yet (a revoke of a raw
-- producer's job that no worker has received), 10: the key prefix. A queued
-- job is finalised at once (START then refuses to run it); a running one is
-- flagged and its id published to the worker processes. Either way its
-- unfinished descendants (children of ``ctx.call``, theirs, ...) are cancelled
-- the same way (``end_children``). Returns "missing", "finished",
-- "cancelled" (was queued) or "cancelling" (was running).
-- include: prelude

local state = redis.call('HGET', job, 'state')
if not state and ARGV[9] ~= '1' then return 'missing' end
if terminal(state) then return 'finished' end
redis.call('SET', KEYS[4], '1', 'EX', ARGV[8])
end_children(ARGV[10], ARGV[8], nil)
if state == 'queued' or state == 'retrying' then
  -- Waiting (to start, or for its retry): no worker holds it, so it ends here;
  -- a delivery that comes later finds it finished and runs nothing.
  redis.call('HSET', job, 'state', 'cancelled', 'finished_at', now)
  redis.call('HDEL', job, 'next_run_at')
  status('cancelled')
  touch()
  return 'cancelled'
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 'cancelling'
