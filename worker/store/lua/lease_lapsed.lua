-- The deliveries whose lease ended unrenewed, by Redis's clock. A lease is
-- counted only from when renewals last resumed after a pause of them all
-- (see lease_renew.lua): a delivery lapses once both its lease ended and a
-- whole lease of its own length passed since then, so every live holder has
-- renewed first. KEYS 1: kombu's unacked hash, 2: the leases, 3: their
-- lengths, 4: the settle time. ARGV 1: the most tags to return.
-- Returns their tags, the longest lapsed first; restoring them is kombu's
-- (it knows each message's queue). Entries whose message was acknowledged
-- meanwhile are dropped.
local unacked, leases, lengths, settled = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local most = tonumber(ARGV[1])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local since = tonumber(redis.call('GET', settled) or now)
local found = {}
for _, tag in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', '(' .. now, 'LIMIT', 0, most)) do
  if redis.call('HEXISTS', unacked, tag) == 0 then
    redis.call('ZREM', leases, tag)
    redis.call('HDEL', lengths, tag)
  elseif now - since >= tonumber(redis.call('HGET', lengths, tag) or '0') then
    found[#found + 1] = tag
  end
end
return found
