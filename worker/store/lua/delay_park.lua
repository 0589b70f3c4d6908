-- A message taken off a queue before its eta waits in Redis instead of in a
-- worker's memory: any worker queues it again when it is due, so a delay of
-- any length survives every worker restarting.
-- KEYS 1: the waiting set (id scored by eta), 2: the messages (id -> the
-- queue list, a newline, the message as it was queued), 3: the wake marker
-- of the job it waits for input for ('' for none; client.respond sets it).
-- ARGV 1: the message's id (its publish tag, or ``wake:<job id>``), 2: its
-- eta (Unix seconds), 3: the queue list to put it back on, 4: the message,
-- 5: the channel the workers' promoters listen on.
-- A message that becomes the first due is announced there, so every idle
-- promoter, which sleeps until the first due, looks again.
-- Returns 1 (parked) or 0 (the job was answered: the caller delivers the
-- message now, its eta cleared; the marker is used up).
local waiting, messages, marker = KEYS[1], KEYS[2], KEYS[3]
local id, due, list, body, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

if marker ~= '' and redis.call('DEL', marker) == 1 then
  redis.call('ZREM', waiting, id)
  redis.call('HDEL', messages, id)
  return 0
end
redis.call('HSET', messages, id, list .. '\n' .. body)
redis.call('ZADD', waiting, due, id)
if redis.call('ZRANGE', waiting, 0, 0)[1] == id then redis.call('PUBLISH', channel, due) end
return 1
