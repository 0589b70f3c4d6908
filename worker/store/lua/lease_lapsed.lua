-- The deliveries whose lease lapsed: not renewed for a lease, counted only
-- from when renewals last resumed (see lease_renew.lua). KEYS 1: kombu's
-- unacked index, 2: the settle time. ARGV 1: the lease in seconds, 2: the
-- most tags to return. Returns their tags, oldest first; restoring them is
-- kombu's (it knows each message's queue).
local index, settled = KEYS[1], KEYS[2]
local lease, most = tonumber(ARGV[1]), tonumber(ARGV[2])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local since = tonumber(redis.call('GET', settled) or now)
if now - since < lease then return {} end
return redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. (now - lease), 'LIMIT', 0, most)
