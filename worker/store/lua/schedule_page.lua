-- One page of schedules by name, from one index (every schedule's, or one
-- owner's). KEYS 1: the index. ARGV 1: the key of a schedule's hash without
-- its name, 2: the name the previous page ended with ('' for the first page),
-- 3: the most to return.
-- Returns {the name the page ends with, 1 if names follow it else 0, then
-- each schedule's hash fields (flat), in name order}. A name whose hash is
-- gone (removed by a release before the indexes) leaves the index here.
local index = KEYS[1]
local base, after, most = ARGV[1], ARGV[2], tonumber(ARGV[3])

local start = '-'
if after ~= '' then start = '(' .. after end
local found = redis.call('ZRANGEBYLEX', index, start, '+', 'LIMIT', 0, most + 1)
local page = {'', 0}
for position, name in ipairs(found) do
  if position > most then
    page[2] = 1
    break
  end
  page[1] = name
  local raw = redis.call('HGETALL', base .. name)
  if #raw == 0 then
    redis.call('ZREM', index, name)
  else
    page[#page + 1] = raw
  end
end
return page
