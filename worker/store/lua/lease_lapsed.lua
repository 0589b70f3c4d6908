-- The deliveries whose lease ended unrenewed, by Redis's clock. A lease is
-- counted only from when renewals last resumed after a pause of them all
-- (see lease_renew.lua): a delivery lapses once both its lease ended and a
-- whole lease of its own length passed since then, so every live holder has
-- renewed first. A sweep that finds nobody renewed for half of its own lease
-- (every live worker renews every third of its lease, the sweeper's own
-- process included) is itself the first command after such a pause (a
-- Redis-wide stall: CLIENT PAUSE, a restart, a partition of every worker):
-- it restarts the settle time (once per gap) and restores nothing, so the
-- holders' queued renewals run before any lease can lapse. Before, a sweep queued behind a
-- stall ran first and took a job from its live worker.
-- KEYS 1: kombu's unacked hash, 2: the leases, 3: their lengths, 4: the
-- settle time, 5: when any worker last renewed.
-- ARGV 1: the most tags to return, 2: the sweeper's lease in seconds.
-- Returns their tags, the longest lapsed first; restoring them is kombu's
-- (it knows each message's queue). Entries whose message was acknowledged
-- meanwhile are dropped.
local unacked, leases, lengths, settled, renewed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local most = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local last = tonumber(redis.call('GET', renewed) or '0')
local settled_at = redis.call('GET', settled)
local since = tonumber(settled_at or now)
if now - last > lease / 2 and tonumber(settled_at or '0') <= last then
  -- Once per gap: if renewals never resume (every keeper broken, the
  -- sweepers alive), leases lapse a lease after this, as they would anyway.
  redis.call('SET', settled, now)
  return {}
end
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
