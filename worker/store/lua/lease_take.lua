-- A worker took a message off a queue: kombu's unacked entry, and a lease on
-- it that ends ARGV 3 seconds from now by Redis's clock (workers' clocks
-- never decide whose lease lapsed; each holder's own lease length counts).
-- The acknowledgements the worker made since its last call ride along: their
-- entries and leases go (what lease_release.lua does), so a job costs the
-- worker's main process one script call, not two.
-- KEYS 1: kombu's unacked hash, 2: kombu's index (tag scored by when it was
-- last taken or renewed, which kombu's own sweep reads), 3: the leases (tag
-- scored by when its lease ends), 4: each lease's length.
-- ARGV 1: the delivery tag, 2: what kombu stores for a restore ([message,
-- exchange, routing key] as JSON), 3: the holder's lease in seconds,
-- 4...: tags of deliveries acknowledged since (at most a few hundred).
local unacked, index, leases, lengths = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tag, stored, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])

if #ARGV > 3 then
  local acked = {unpack(ARGV, 4)}
  redis.call('ZREM', index, unpack(acked))
  redis.call('HDEL', unacked, unpack(acked))
  redis.call('ZREM', leases, unpack(acked))
  redis.call('HDEL', lengths, unpack(acked))
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('HSET', unacked, tag, stored)
redis.call('ZADD', index, now, tag)
redis.call('ZADD', leases, now + lease, tag)
redis.call('HSET', lengths, tag, lease)
return 1
