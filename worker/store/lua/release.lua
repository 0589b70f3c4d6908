-- KEYS: concurrency sets; ARGV 1: the job.

for _, set in ipairs(KEYS) do redis.call('ZREM', set, ARGV[1]) end
return #KEYS
