-- A worker renews the leases of the deliveries it holds (running, prefetched
-- or waiting for their eta). KEYS 1: kombu's unacked index, 2: when any worker
-- last renewed, 3: when renewals last resumed after a pause of them all.
-- ARGV 1: the lease in seconds, 2..: the delivery tags held.
-- Only entries still there are renewed (XX): a lapsed one was handed to
-- another worker. Returns the tags that were gone, so the worker learns its
-- lease on them ended. A gap of more than half a lease since anyone renewed
-- means every worker was cut off (Redis restarted, a partition): the settle
-- time restarts, so nothing lapses until live workers had a lease to renew.
local index, renewed, settled = KEYS[1], KEYS[2], KEYS[3]
local lease = tonumber(ARGV[1])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local last = tonumber(redis.call('GET', renewed) or '0')
if now - last > lease / 2 then redis.call('SET', settled, now) end
redis.call('SET', renewed, now)
local gone = {}
for i = 2, #ARGV do
  if redis.call('ZADD', index, 'XX', 'CH', now, ARGV[i]) == 0 and
     not redis.call('ZSCORE', index, ARGV[i]) then
    gone[#gone + 1] = ARGV[i]
  end
end
return gone
