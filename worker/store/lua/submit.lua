-- KEYS 1: the job record, 2: the queue's list ('' with no message); for a
-- child job 3: the parent's record, 4: the parent's cancel flag, 5: the
-- child's cancel flag.
-- ARGV 1: skill, 2: queue, 3: now, 4: record ttl, 5: notice ('' if none),
-- 6: the Celery message to queue ('' when Celery publishes it), 7: the
-- broker's database when it is not this one ('' if it is), 8: this database,
-- 9: the parent job ('' for a job nobody called), 10: the child's call depth,
-- 11: the cancel flag's ttl, 12: the job id, 13: '1' when the child runs
-- inline in its caller's process, 14: the job's owner ('' for none; KEYS 6 is
-- then the owner's index). KEYS 7: the index of all jobs, 8: the skill's
-- index, 9: the idempotency key's marker ('' for none). ARGV 15: when the job
-- may start (Unix seconds; '' to start at once), 16: its priority ('' for 0).
-- Returns the existing job's id when the idempotency key already made one.
-- Returns 0 when the record exists (the job was submitted: nothing is queued
-- twice), 1 when the job is recorded (and its message queued). A child is
-- listed in its parent's ``children`` (in start order), and a child of a
-- parent being cancelled is cancelled before it starts.

if KEYS[9] and KEYS[9] ~= '' then
  local existing = redis.call('GET', KEYS[9])
  if existing then return existing end  -- the job this idempotency key made
end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[6] ~= '' then
  -- First: a script stops at an error without undoing what it wrote, and a
  -- record without its message would stay queued forever.
  if ARGV[7] ~= '' then redis.call('SELECT', ARGV[7]) end
  redis.call('LPUSH', KEYS[2], ARGV[6])
  if ARGV[7] ~= '' then redis.call('SELECT', ARGV[8]) end
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'skill', ARGV[1], 'queue', ARGV[2],
           'created_at', ARGV[3], 'attempts', 0, 'seq', 0)
if ARGV[15] and ARGV[15] ~= '' then redis.call('HSET', KEYS[1], 'eta', ARGV[15]) end
if ARGV[16] and ARGV[16] ~= '' then redis.call('HSET', KEYS[1], 'priority', ARGV[16]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'notice', ARGV[5]) end
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[1], 'parent', ARGV[9], 'depth', ARGV[10], 'inline', ARGV[13])
  local children = redis.call('HGET', KEYS[3], 'children')
  redis.call('HSET', KEYS[3], 'children', children and (children .. ',' .. ARGV[12]) or ARGV[12])
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('SET', KEYS[5], '1', 'EX', ARGV[11])
  end
end
if ARGV[14] ~= '' then
  -- Owned (the HTTP server's callers): the record names its owner, and the
  -- owner's index lists it newest first; entries older than the retention
  -- are trimmed here, so the index costs O(page) to read and never grows
  -- past what Redis still holds.
  redis.call('HSET', KEYS[1], 'owner', ARGV[14])
  local index = KEYS[6]
  redis.call('ZADD', index, ARGV[3], ARGV[12])
  redis.call('ZREMRANGEBYSCORE', index, '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
  redis.call('EXPIRE', index, ARGV[4])
end
local oldest = tonumber(ARGV[3]) - tonumber(ARGV[4])
for _, index in ipairs({KEYS[7], KEYS[8]}) do
  redis.call('ZADD', index, ARGV[3], ARGV[12])
  redis.call('ZREMRANGEBYSCORE', index, '-inf', oldest)  -- records that have expired
  redis.call('EXPIRE', index, ARGV[4])
end
if KEYS[9] and KEYS[9] ~= '' then redis.call('SET', KEYS[9], ARGV[12], 'EX', ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
