-- A delayed job a plain Celery producer sent (``countdown``/``eta``), as the
-- worker receives it: the worker holds it until its eta, and until then the
-- job is ``queued`` with its ``eta``, so status, events and cancel work.
-- KEYS 1: the record, 2: the index of all jobs, 3: the skill's index.
-- ARGV 1: skill, 2: queue, 3: now, 4: record ttl, 5: eta, 6: the job id.
-- Returns 1 if the record was written, 0 if one existed.

-- The arguments, by name (the header above says what each is).
local record = KEYS[1]
local all_index = KEYS[2]
local skill_index = KEYS[3]
local skill = ARGV[1]
local queue = ARGV[2]
local now = ARGV[3]
local record_ttl = ARGV[4]
local eta = ARGV[5]
local job_id = ARGV[6]
if redis.call('EXISTS', record) == 1 then return 0 end
redis.call('HSET', record, 'state', 'queued', 'skill', skill, 'queue', queue,
           'created_at', now, 'attempts', 0, 'seq', 0, 'eta', eta)
redis.call('EXPIRE', record, record_ttl)
for _, index in ipairs({all_index, skill_index}) do
  redis.call('ZADD', index, now, job_id)
  redis.call('EXPIRE', index, record_ttl)
end
return 1
