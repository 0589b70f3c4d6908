-- Deliveries acknowledged (their jobs ended) or rejected without a requeue:
-- kombu's unacked entries go, and their leases. One script call instead of
-- kombu's MULTI/EXEC pipeline of the same removals, for any number of tags.
-- KEYS 1: kombu's index, 2: kombu's unacked hash, 3: the leases, 4: each
-- lease's length.
-- ARGV 1...: the delivery tags (at least one, at most a few hundred).
local index, unacked, leases, lengths = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

redis.call('ZREM', index, unpack(ARGV))
redis.call('HDEL', unacked, unpack(ARGV))
redis.call('ZREM', leases, unpack(ARGV))
redis.call('HDEL', lengths, unpack(ARGV))
return #ARGV
