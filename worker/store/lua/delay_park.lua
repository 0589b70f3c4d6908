-- A message taken off a queue before its eta waits in Redis instead of in a
-- worker's memory: any worker queues it again when it is due, so a delay of
-- any length survives every worker restarting.
-- KEYS 1: the waiting set (id scored by eta), 2: the messages (id -> the
-- queue list, a newline, the message as it was queued).
-- ARGV 1: the message's id (its publish tag), 2: its eta (Unix seconds),
-- 3: the queue list to put it back on, 4: the message.
local waiting, messages = KEYS[1], KEYS[2]
local id, due, list, body = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

redis.call('HSET', messages, id, list .. '\n' .. body)
redis.call('ZADD', waiting, due, id)
return 1
