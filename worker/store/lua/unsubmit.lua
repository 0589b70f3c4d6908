-- Undo a SUBMIT whose Celery message was refused: the same KEYS as SUBMIT.
-- ARGV 1: the job id. Removes the record, its index entries and its
-- idempotency marker, so a retry of the submission starts afresh.

redis.call('DEL', KEYS[1])
for i = 6, 8 do
  if KEYS[i] and KEYS[i] ~= '' then redis.call('ZREM', KEYS[i], ARGV[1]) end
end
if KEYS[9] and KEYS[9] ~= '' then redis.call('DEL', KEYS[9]) end
return 1
