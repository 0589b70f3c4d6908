-- A running job's attempt ends to wait (``ctx.sleep``): it frees its worker and
-- runs again later. KEYS 1-3 as every job script, 4: the per-queue count of
-- running jobs. ARGV 6: the state it waits in (``queued``), 7: when it runs
-- again (Unix seconds), 8: what the status event adds (JSON members, '' for
-- none), 9: the run's delivery token, 10: the notice (why it waits), 11: the
-- key prefix.
-- ``resumes`` counts these waits, so they never count as deliveries lost to
-- a dead worker (START's limit). Returns ``suspended``, ``superseded`` (a
-- later delivery took the job over), or the state another process set.
-- include: prelude
-- The arguments, by name (the header above says what each is).
local taken = KEYS[4]
local waiting_state = ARGV[6]
local wake_at = ARGV[7]
local extra = ARGV[8]
local delivery = ARGV[9]
local notice = ARGV[10]
local prefix = ARGV[11]

local current = redis.call('HGET', job, 'state')
if current ~= 'running' then return current or 'missing' end
if superseded(delivery) then return 'superseded' end
local queue = redis.call('HGET', job, 'queue')
if queue then redis.call('HINCRBY', taken, queue, -1) end
index_running(prefix, false)
redis.call('HINCRBY', job, 'resumes', 1)
redis.call('HSET', job, 'state', waiting_state, 'notice', notice)
if waiting_state == 'queued' then redis.call('HSET', job, 'eta', wake_at) end
status(waiting_state, ',"until":' .. wake_at .. (extra ~= '' and (',' .. extra) or ''))
touch()
return 'suspended'
