-- Bring a parked message forward: a job waiting for input was answered.
-- KEYS 1: the waiting set, 2: the job's wake marker. ARGV 1: the parked
-- message's id (``wake:<job id>``), 2: the marker's ttl in seconds, 3: the
-- channel the workers' promoters listen on (told that one is due now).
-- The marker tells delay_park.lua to deliver the message at once (its eta
-- cleared) the next time a worker reads it; if it is parked, it is due now,
-- so the promoter queues it within a fraction of a second. Returns 1 if it
-- was parked, 0 if it is still to be read.
local waiting, marker = KEYS[1], KEYS[2]
local id, ttl, channel = ARGV[1], ARGV[2], ARGV[3]

redis.call('SET', marker, '1', 'EX', ttl)
if redis.call('ZSCORE', waiting, id) then
  redis.call('ZADD', waiting, 0, id)
  redis.call('PUBLISH', channel, '0')
  return 1
end
return 0
