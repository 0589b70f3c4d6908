-- KEYS 1 workers, 2 heartbeats. ARGV 1 now. The entries of live workers.

local names = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], '+inf')
if #names == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(names))
