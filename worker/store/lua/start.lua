-- KEYS 4: cancel flag, 5: the job's consumed-signature marker, 6: the
-- per-queue count of running jobs (the backlog's "taken"). ARGV 6: skill,
-- 7: worker hostname, 8: queue, 9: a token unique to this delivery, so a call
-- retried after a lost reply does not count the attempt twice; 10: the most
-- deliveries a job may have, 11: the error JSON recorded when a delivery is
-- over that limit, 12: the key prefix, 13: the cancel flag's ttl, 14: the
-- error JSON of children orphaned when the job ends here (see end_children).
-- Returns {decision, attempts, state}: decision is "run", "cancelled" (the
-- cancel flag was set: the job is finalised here), "done" (a duplicate
-- delivery of a finished job), "replayed" (a signed call of this job already
-- finished, though its record is gone: not run again) or "failed" (over the
-- delivery limit: every earlier delivery ended with its worker dying).
-- include: prelude
-- The arguments, by name (the header above says what each is).
local cancel_flag = KEYS[4]
local consumed_marker = KEYS[5]
local taken = KEYS[6]
local skill = ARGV[6]
local worker_name = ARGV[7]
local queue_name = ARGV[8]
local delivery = ARGV[9]
local max_deliveries = ARGV[10]
local over_limit_error = ARGV[11]
local prefix = ARGV[12]
local cancel_ttl = ARGV[13]
local orphaned_error = ARGV[14]

-- One read for what the decision needs: every redis.call in a script costs
-- Redis a few microseconds beyond its command, and START runs for every job.
local f = redis.call('HMGET', job, 'state', 'delivery', 'attempts', 'retries', 'resumes', 'eta',
                     'created_at', 'notice', 'finished_at', 'next_run_at')
local state, attempts_before = f[1], tonumber(f[3] or '0')
local retries, resumes = tonumber(f[4] or '0'), tonumber(f[5] or '0')
if terminal(state) then
  return {'done', attempts_before, state}
end
local created = f[7] or now
-- When the job could first have started: its eta, else its submit.
local ready_at = f[6] or created
if state == 'running' and f[2] == delivery then
  return {'run', attempts_before, 'running', retries, ready_at}
end
-- Neither flag is set for nearly every job: one call asks for both.
local flagged = redis.call('EXISTS', consumed_marker, cancel_flag) > 0
if flagged and redis.call('EXISTS', consumed_marker) == 1 then
  return {'replayed', attempts_before, state or ''}
end
if not state then index_new(prefix, skill) end  -- from a producer that wrote no record
local function untake()
  if state == 'running' then
    redis.call('HINCRBY', taken, queue_name, -1)
    index_running(prefix, false)
  end
end
if flagged and redis.call('EXISTS', cancel_flag) == 1 then
  untake()
  redis.call('HSET', job, 'state', 'cancelled', 'finished_at', now, 'worker', worker_name,
             'created_at', created, 'skill', skill, 'queue', queue_name)
  status('cancelled')
  touch()
  rollup(prefix, 'cancelled')
  end_children(prefix, cancel_ttl, orphaned_error)
  return {'cancelled', attempts_before, 'cancelled'}
end
local attempts = attempts_before + 1
-- Deliveries beyond the scheduled retries and the job's own waits (ctx.sleep)
-- are the ones whose worker died.
local lost = attempts - retries - resumes
if lost > tonumber(max_deliveries) then
  untake()
  redis.call('HSET', job, 'state', 'failed', 'finished_at', now, 'error', over_limit_error,
             'attempts', attempts, 'created_at', created, 'skill', skill, 'queue', queue_name)
  redis.call('HDEL', job, 'notice')
  status('failed', ',"error":' .. over_limit_error)
  touch()
  rollup(prefix, 'failed')
  end_children(prefix, cancel_ttl, orphaned_error)
  return {'failed', attempts, 'failed', retries}
end
-- The last delivery's children are kept: the job's calls find them again
-- (an inline one whose process died runs again in the caller's new run), and
-- FINISH ends any that the new run does not call again.
if lost > 1 then status('retrying', ',"attempt":' .. attempts) end
if state ~= 'running' then redis.call('HINCRBY', taken, queue_name, 1) end
index_running(prefix, true)
redis.call('HSET', job, 'state', 'running', 'started_at', now, 'worker', worker_name,
           'delivery', delivery, 'emitted', 0, 'attempts', attempts, 'created_at', created,
           'skill', skill, 'queue', queue_name)
-- What an earlier run or the submit left (a first run's record has none of it).
if attempts_before > 0 or f[8] or f[9] or f[10] then
  redis.call('HDEL', job, 'finished_at', 'result', 'error', 'notice', 'next_run_at')
end
status('running', ',"attempt":' .. attempts .. ',"worker":' .. cjson.encode(worker_name))
touch()
return {'run', attempts, 'running', retries, ready_at}
