-- A delayed job a plain Celery producer sent (``countdown``/``eta``), as the
-- worker receives it: the worker holds it until its eta, and until then the
-- job is ``queued`` with its ``eta``, so status, events and cancel work.
-- KEYS 1: the record, 2: the index of all jobs, 3: the skill's index.
-- ARGV 1: skill, 2: queue, 3: now, 4: record ttl, 5: eta, 6: the job id.
-- Returns 1 if the record was written, 0 if one existed.

if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'skill', ARGV[1], 'queue', ARGV[2],
           'created_at', ARGV[3], 'attempts', 0, 'seq', 0, 'eta', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
for _, index in ipairs({KEYS[2], KEYS[3]}) do
  redis.call('ZADD', index, ARGV[3], ARGV[6])
  redis.call('EXPIRE', index, ARGV[4])
end
return 1
