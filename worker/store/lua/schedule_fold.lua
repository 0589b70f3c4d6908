-- Fold schedules written before the name indexes into them: a share of the
-- old set's names at a time, each into the index of every name and its
-- owner's (read from its spec). Safe to run from any number of processes at
-- once (each name is popped once; adding to an index twice changes nothing).
-- KEYS 1: the old set of names, 2: the index of every schedule's name.
-- ARGV 1: the key of a schedule's hash without its name, 2: the key of an
-- owner's index without the owner, 3: the most names to fold in this call.
-- Returns how many names are still to fold.
local legacy, names = KEYS[1], KEYS[2]
local base, owner_base, most = ARGV[1], ARGV[2], tonumber(ARGV[3])

for _, name in ipairs(redis.call('SPOP', legacy, most)) do
  local schedule = base .. name
  local spec = redis.call('HGET', schedule, 'spec')
  if spec then
    local owned = ''
    local ok, decoded = pcall(cjson.decode, spec)
    if ok and type(decoded) == 'table' and type(decoded.owner) == 'string' then
      owned = owner_base .. decoded.owner
      redis.call('ZADD', owned, 0, name)
    end
    redis.call('ZADD', names, 0, name)
    redis.call('HSET', schedule, 'index', owned)
  end
end
return redis.call('SCARD', legacy)
