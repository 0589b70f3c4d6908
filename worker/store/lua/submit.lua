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
-- may start (Unix seconds; '' to start at once), 16: its priority ('' for 0),
-- 17: the args as JSON (kept, so the job can be shown and retried), 18: the
-- job this one retries ('' for none; KEYS 10 is then that job's record, which
-- lists this one in its ``retried_by``), 19: the job's budget as JSON
-- ({"<unit>": "<ceiling>"}; '' for none), kept as ``budget:<unit>`` fields;
-- 20: the quota of owners without their own (JSON, see spend.lua; '' for
-- none), 21: the key prefix. KEYS 11: the quotas hash. ARGV 22: the A2A
-- context the job belongs to ('' for none; KEYS 12 is then the owner's index
-- of that context, kept as the owner's index is).
-- Returns {'quota', owner, unit, limit, renews at}, writing nothing, when
-- the owner's jobs have spent a quota for its current period.
-- Returns the existing job's id when the idempotency key already made one.
-- Returns 0 when the record exists (the job was submitted: nothing is queued
-- twice), 1 when the job is recorded (and its message queued). A child is
-- listed in its parent's ``children`` (in start order), and a child of a
-- parent being cancelled is cancelled before it starts.

-- include: key layout
-- The arguments, by name (the header above says what each is).
local record = KEYS[1]
local queue_list = KEYS[2]
local parent_record = KEYS[3]
local parent_cancel = KEYS[4]
local own_cancel = KEYS[5]
local owner_index = KEYS[6]
local all_index = KEYS[7]
local skill_index = KEYS[8]
local idempotency_marker = KEYS[9]
local retried_record = KEYS[10]
local skill = ARGV[1]
local queue = ARGV[2]
local now = ARGV[3]
local record_ttl = ARGV[4]
local notice = ARGV[5]
local message = ARGV[6]
local broker_db = ARGV[7]
local own_db = ARGV[8]
local parent_id = ARGV[9]
local depth = ARGV[10]
local cancel_ttl = ARGV[11]
local job_id = ARGV[12]
local inline = ARGV[13]
local owner = ARGV[14]
local eta = ARGV[15]
local priority = ARGV[16]
local args_json = ARGV[17]
local retry_of = ARGV[18]
local budget_json = ARGV[19]
local default_quota = ARGV[20]
local prefix = ARGV[21]
local quotas = KEYS[11]
local context = ARGV[22] or ''
local context_index = KEYS[12]
if idempotency_marker and idempotency_marker ~= '' then
  local existing = redis.call('GET', idempotency_marker)
  if existing then return existing end  -- the job this idempotency key made
end
if redis.call('EXISTS', record) == 1 then return 0 end
if owner ~= '' and quotas and quotas ~= '' then
  local defined = redis.call('HGET', quotas, owner) or default_quota
  if defined and defined ~= '' then
    for unit, quota in pairs(cjson.decode(defined)) do
      local limit, period = tonumber(quota[1]), tonumber(quota[2])
      local start = math.floor(tonumber(now) / period) * period
      local used = tonumber(redis.call('GET', prefix .. KEY.quota .. redis.sha1hex(owner) .. ':'
                                      .. unit .. ':' .. string.format('%d', start))) or 0
      if used >= limit then
        return {'quota', owner, unit, tostring(limit), string.format('%d', start + period)}
      end
    end
  end
end
if message ~= '' then
  -- First: a script stops at an error without undoing what it wrote, and a
  -- record without its message would stay queued forever.
  if broker_db ~= '' then redis.call('SELECT', broker_db) end
  redis.call('LPUSH', queue_list, message)
  if broker_db ~= '' then redis.call('SELECT', own_db) end
end
redis.call('HSET', record, 'state', 'queued', 'skill', skill, 'queue', queue,
           'created_at', now, 'attempts', 0, 'seq', 0, 'args', args_json)
if budget_json and budget_json ~= '' then
  for unit, ceiling in pairs(cjson.decode(budget_json)) do
    redis.call('HSET', record, 'budget:' .. unit, ceiling)
  end
end
if retry_of ~= '' then
  redis.call('HSET', record, 'retry_of', retry_of)
  local earlier = redis.call('HGET', retried_record, 'retried_by')
  if earlier then
    redis.call('HSET', retried_record, 'retried_by', earlier .. ',' .. job_id)
  elseif redis.call('EXISTS', retried_record) == 1 then
    redis.call('HSET', retried_record, 'retried_by', job_id)
  end
end
if eta and eta ~= '' then redis.call('HSET', record, 'eta', eta) end
if priority and priority ~= '' then redis.call('HSET', record, 'priority', priority) end
if notice ~= '' then redis.call('HSET', record, 'notice', notice) end
if parent_id ~= '' then
  redis.call('HSET', record, 'parent', parent_id, 'depth', depth, 'inline', inline)
  local children = redis.call('HGET', parent_record, 'children')
  redis.call('HSET', parent_record, 'children', children and (children .. ',' .. job_id) or job_id)
  if redis.call('EXISTS', parent_cancel) == 1 then
    redis.call('SET', own_cancel, '1', 'EX', cancel_ttl)
  end
end
if owner ~= '' then
  -- Owned (the HTTP server's callers): the record names its owner, and the
  -- owner's index lists it newest first; entries older than the retention
  -- are trimmed here, so the index costs O(page) to read and never grows
  -- past what Redis still holds.
  redis.call('HSET', record, 'owner', owner)
  local index = owner_index
  redis.call('ZADD', index, now, job_id)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', tonumber(now) - tonumber(record_ttl))
  redis.call('EXPIRE', index, record_ttl)
end
if context ~= '' then
  -- An A2A context: the record names it, and the owner's index of it lists
  -- the context's tasks newest first, trimmed and expiring as the owner's.
  redis.call('HSET', record, 'context', context)
  redis.call('ZADD', context_index, now, job_id)
  redis.call('ZREMRANGEBYSCORE', context_index, '-inf', tonumber(now) - tonumber(record_ttl))
  redis.call('EXPIRE', context_index, record_ttl)
end
-- The indexes drop the entries of records that have expired, and have their
-- ttl renewed, on one submit in 16 (picked by the job id's last character):
-- each redis.call costs Redis a few microseconds beyond its command, and
-- trimming less often leaves at most a few more stale entries, which readers
-- skip as they skip any id whose record is gone.
local oldest = tonumber(now) - tonumber(record_ttl)
local upkeep = string.byte(job_id, -1) % 16 == 0
for _, index in ipairs({all_index, skill_index}) do
  redis.call('ZADD', index, now, job_id)
  if upkeep then
    redis.call('ZREMRANGEBYSCORE', index, '-inf', oldest)  -- records that have expired
    redis.call('EXPIRE', index, record_ttl)
  end
end
if idempotency_marker and idempotency_marker ~= '' then redis.call('SET', idempotency_marker, job_id, 'EX', record_ttl) end
redis.call('EXPIRE', record, record_ttl)
return 1
