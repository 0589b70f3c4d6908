-- KEYS 1 workers, 2 heartbeats, 3 catalog. ARGV 1 hostname, 2 entry, 3 expires
-- at, 4 now, then (skill, catalog entry) pairs.

redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
for _, name in ipairs(gone) do redis.call('HDEL', KEYS[1], name) end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4]) end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
return #gone
