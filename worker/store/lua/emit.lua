-- ARGV 6: n pending events, 7: the delivery's number of the first of them
-- (the writer counts its events 1, 2, 3...), 8: their envelope tails joined
-- by newlines (a tail is the envelope after its seq, encoded by the writer;
-- JSON text never holds a raw newline), 9: the batch's last progress message
-- ('' if none), 10: the run's delivery token (see ``superseded``); returns
-- -1, writing nothing, when a later delivery took the job over. One string instead of one argument per event: Redis parses
-- and redis-py packs a few large arguments far faster than thousands of small
-- ones. Events the record says were already written in this delivery are
-- skipped, so a call retried after a lost reply writes nothing twice. The
-- seqs of the batch come from one HINCRBY.
-- include: prelude

local n = tonumber(ARGV[6])
local first = tonumber(ARGV[7])
local tails = ARGV[8]
local delivery = ARGV[10]
if superseded(delivery) then return -1 end
local emitted = tonumber(redis.call('HGET', job, 'emitted') or '0')
local skip = math.max(0, math.min(n, emitted - first + 1))
local seq = 0
if skip < n then
  seq = redis.call('HINCRBY', job, 'seq', n - skip) - (n - skip)
  local find, sub = string.find, string.sub
  local pos = 1
  for i = 0, n - 1 do
    local stop = find(tails, '\n', pos, true) or (#tails + 1)
    if i >= skip then
      seq = seq + 1
      local env = head .. seq .. sub(tails, pos, stop - 1)
      redis.call('XADD', stream, '0-' .. seq, 'e', env)
      redis.call('PUBLISH', channel, env)
    end
    pos = stop + 1
  end
  if ARGV[9] ~= '' then redis.call('HSET', job, 'progress', ARGV[9]) end
  redis.call('XTRIM', stream, 'MAXLEN', '~', maxlen)  -- once per batch, not per event
end
redis.call('HSET', job, 'emitted', math.max(emitted, first + n - 1))
touch()
return seq
