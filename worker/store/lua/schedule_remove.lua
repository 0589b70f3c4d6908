-- Remove a schedule and its place in every index, at once.
-- KEYS 1: the due set, 2: the schedule's hash, 3: the index of every
-- schedule's name, 4: the set of names written before the indexes.
-- ARGV 1: the name. Returns 1, or 0 when there was no such schedule.
local due, schedule, names, legacy = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local name = ARGV[1]

local owned = redis.call('HGET', schedule, 'index')
if owned and owned ~= '' then redis.call('ZREM', owned, name) end
redis.call('ZREM', names, name)
redis.call('ZREM', due, name)
redis.call('SREM', legacy, name)
return redis.call('DEL', schedule)
