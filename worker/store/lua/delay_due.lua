-- Queue the waiting messages whose eta has come (Redis's clock), oldest
-- first, at most ARGV 1 of them; any number of workers may call it at once,
-- and each message is queued once. KEYS as delay_park.lua.
-- Returns {queued, seconds until the next one is due (-1: none waits)}.
local waiting, messages = KEYS[1], KEYS[2]
local most = tonumber(ARGV[1])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', waiting, '-inf', now, 'LIMIT', 0, most)
for _, id in ipairs(due) do
  local stored = redis.call('HGET', messages, id)
  if stored then
    local cut = string.find(stored, '\n', 1, true)
    -- RPUSH: the consuming end, so a job already late goes first.
    redis.call('RPUSH', string.sub(stored, 1, cut - 1), string.sub(stored, cut + 1))
    redis.call('HDEL', messages, id)
  end
  redis.call('ZREM', waiting, id)
end
local next_one = redis.call('ZRANGE', waiting, 0, 0, 'WITHSCORES')
if #next_one == 0 then return {#due, '-1'} end
return {#due, tostring(math.max(0, tonumber(next_one[2]) - now))}
