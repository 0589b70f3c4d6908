-- A worker took a message off a queue: kombu's unacked entry, leased from
-- now (Redis's clock, so workers' clocks never decide whose lease lapsed).
-- KEYS 1: kombu's unacked hash, 2: its index (tag scored by lease start).
-- ARGV 1: the delivery tag, 2: what kombu stores for a restore ([message,
-- exchange, routing key] as JSON).
local unacked, index = KEYS[1], KEYS[2]
local tag, stored = ARGV[1], ARGV[2]

local clock = redis.call('TIME')
redis.call('ZADD', index, tonumber(clock[1]) + tonumber(clock[2]) / 1000000, tag)
redis.call('HSET', unacked, tag, stored)
return 1
