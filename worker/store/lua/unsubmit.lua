-- Undo a SUBMIT: its Celery message was refused, or it did not reach the
-- replicas SKILLQ_REDIS_MIN_REPLICAS asks for. The same KEYS as SUBMIT.
-- ARGV 1: the job id; 2: the message SUBMIT queued ('' or absent when
-- Celery published it), 3: the broker's database when it is not this one
-- ('' if it is), 4: this database. Removes the record, its index entries
-- (its A2A context's, KEYS 12, too) and its idempotency marker, a child's
-- entry in its parent's ``children`` (KEYS 3) and a retry's entry in its
-- retried job's ``retried_by`` (KEYS 10), so a retry of the submission
-- starts afresh.
-- Returns 0, undoing nothing, when the queued message is no longer in its
-- list: a worker took it, so the job is running and stays.

local queue_list = KEYS[2]
local job_id = ARGV[1]
local message = ARGV[2] or ''
local broker_db = ARGV[3] or ''
local own_db = ARGV[4] or ''

if message ~= '' then
  if broker_db ~= '' then redis.call('SELECT', broker_db) end
  local removed = redis.call('LREM', queue_list, 1, message)
  if broker_db ~= '' then redis.call('SELECT', own_db) end
  if removed == 0 then return 0 end
end
redis.call('DEL', KEYS[1])
-- Take this job out of a comma-separated list of ids in another record.
local function unlist(other_record, field)
  if not other_record or other_record == '' then return end
  local listed = redis.call('HGET', other_record, field)
  if not listed then return end
  local kept = {}
  for id in string.gmatch(listed, '[^,]+') do
    if id ~= job_id then kept[#kept + 1] = id end
  end
  redis.call('HSET', other_record, field, table.concat(kept, ','))
end
unlist(KEYS[3], 'children')
unlist(KEYS[10], 'retried_by')
for _, i in ipairs({6, 7, 8, 12}) do
  if KEYS[i] and KEYS[i] ~= '' then redis.call('ZREM', KEYS[i], job_id) end
end
if KEYS[9] and KEYS[9] ~= '' then redis.call('DEL', KEYS[9]) end
return 1
