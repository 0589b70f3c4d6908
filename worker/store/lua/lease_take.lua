-- A worker took a message off a queue: kombu's unacked entry, and a lease on
-- it that ends ARGV 3 seconds from now by Redis's clock (workers' clocks
-- never decide whose lease lapsed; each holder's own lease length counts).
-- KEYS 1: kombu's unacked hash, 2: kombu's index (tag scored by when it was
-- last taken or renewed, which kombu's own sweep reads), 3: the leases (tag
-- scored by when its lease ends), 4: each lease's length.
-- ARGV 1: the delivery tag, 2: what kombu stores for a restore ([message,
-- exchange, routing key] as JSON), 3: the holder's lease in seconds.
local unacked, index, leases, lengths = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tag, stored, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('HSET', unacked, tag, stored)
redis.call('ZADD', index, now, tag)
redis.call('ZADD', leases, now + lease, tag)
redis.call('HSET', lengths, tag, lease)
return 1
