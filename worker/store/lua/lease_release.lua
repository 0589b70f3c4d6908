-- A delivery is acknowledged (its job ended) or rejected without a requeue:
-- kombu's unacked entry goes, and its lease. One script call instead of
-- kombu's MULTI/EXEC pipeline of the same removals.
-- KEYS 1: kombu's index, 2: kombu's unacked hash, 3: the leases, 4: each
-- lease's length.
-- ARGV 1: the delivery tag.
local index, unacked, leases, lengths = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tag = ARGV[1]

redis.call('ZREM', index, tag)
redis.call('HDEL', unacked, tag)
redis.call('ZREM', leases, tag)
redis.call('HDEL', lengths, tag)
return 1
