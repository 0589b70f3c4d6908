-- KEYS: concurrency sets; ARGV 1: lease seconds, 2..: the job holding each set's
-- slot (aligned with KEYS). Extends only slots still held (XX): a slot that
-- expired meanwhile is not taken back behind the limit's back.

local clock = redis.call('TIME')
local until_ = tonumber(clock[1]) + tonumber(clock[2]) / 1000000 + tonumber(ARGV[1])
for i, set in ipairs(KEYS) do
  redis.call('ZADD', set, 'XX', until_, ARGV[i + 1])
end
return #KEYS
