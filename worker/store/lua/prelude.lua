-- The prelude every job script includes (``-- include: prelude``).
-- Common KEYS: 1 the job record, 2 its event stream, 3 its pub/sub channel.
-- Common ARGV: 1 stream maxlen, 2 stream ttl, 3 record ttl, 4 the envelope
-- head (``{"job_id":"<id>","seq":``), 5 now (Unix seconds).
-- ``emit`` allocates an event's seq from the job record (so any process can
-- write a job's events without gaps), appends the envelope to the stream as
-- id ``0-<seq>`` (a reader resumes after any seq with XRANGE) and publishes
-- it; the envelope is concatenated from pieces the caller JSON-encoded.

-- include: key layout
local job, stream, channel = KEYS[1], KEYS[2], KEYS[3]
local maxlen, stream_ttl, record_ttl = ARGV[1], ARGV[2], ARGV[3]
local head, now = ARGV[4], ARGV[5]
local function emit_tail(seq, tail, untrimmed)
  local env = head .. seq .. tail
  if untrimmed then
    redis.call('XADD', stream, '0-' .. seq, 'e', env)
  else
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '0-' .. seq, 'e', env)
  end
  redis.call('PUBLISH', channel, env)
end
-- The listing indexes (see ``worker.client.listing``): every job by creation
-- time, by skill, and the running ones by start time.
local function job_id_of(prefix) return string.sub(job, #prefix + #KEY.job + 1) end
local function index_new(prefix, skill)
  local id = job_id_of(prefix)
  for _, index in ipairs({prefix .. KEY.jobs, prefix .. KEY.skill_jobs .. skill}) do
    redis.call('ZADD', index, now, id)
    redis.call('EXPIRE', index, record_ttl)
  end
end
local function index_running(prefix, on)
  if on then
    redis.call('ZADD', prefix .. KEY.running, now, job_id_of(prefix))
  else
    redis.call('ZREM', prefix .. KEY.running, job_id_of(prefix))
  end
end
local function emit(ts, kind, payload)
  local seq = redis.call('HINCRBY', job, 'seq', 1)
  emit_tail(seq, ',"ts":' .. ts .. ',"kind":' .. kind .. ',"payload":' .. payload .. '}')
  return seq
end
local function status(state, extra)
  return emit(now, '"status"', '{"state":"' .. state .. '"' .. (extra or '') .. '}')
end
local function touch()
  redis.call('EXPIRE', job, record_ttl)
  redis.call('EXPIRE', stream, stream_ttl)
end
-- A run's writes carry the token START gave its delivery. Once a later
-- delivery took the job over (the run's lease lapsed: its worker froze, was
-- cut off, or died), the old run's writes are refused. '' writes unfenced
-- (a record written from outside any run).
local function superseded(token)
  return token ~= '' and redis.call('HGET', job, 'delivery') ~= token
end
local function terminal(state)
  return state == 'succeeded' or state == 'failed' or state == 'cancelled'
end
-- The dashboard's rollup of the minute ``now`` falls in (``worker.store.rollups``):
-- jobs ended by outcome, and run durations in buckets of half powers of two
-- milliseconds (bucket b holds runs up to 2^(b/2) ms). O(1) per job; each
-- minute's hash is kept ROLLUP_TTL seconds, so memory stays bounded.
local function rollup(prefix, state, started)
  local key = prefix .. KEY.rollup .. math.floor(tonumber(now) / 60)
  if redis.call('HINCRBY', key, state, 1) == 1 then redis.call('EXPIRE', key, ROLLUP_TTL) end
  if started then
    local ms = (tonumber(now) - tonumber(started)) * 1000
    local bucket = 0
    if ms > 1 then bucket = math.min(80, math.ceil(2 * math.log(ms) / math.log(2))) end
    redis.call('HINCRBY', key, 'd' .. bucket, 1)
  end
end
-- End the unfinished descendants of the job KEYS name (children of ctx.call,
-- theirs, ...; up to 1,000): queued ones are cancelled at once, running ones
-- flagged and published to their workers. With ``orphaned`` (an error JSON),
-- children that ran inline in the job's own process are failed with it
-- instead: that process ended the job (or died), so nothing else will.
local function end_children(prefix, ttl, orphaned)
  local saved = {job, stream, channel, head}
  local pending, i = {}, 1
  for id in string.gmatch(redis.call('HGET', job, 'children') or '', '[^,]+') do
    pending[#pending + 1] = id
  end
  while i <= #pending and i <= 1000 do
    local id = pending[i]
    i = i + 1
    local key = prefix .. KEY.job .. id
    local state = redis.call('HGET', key, 'state')
    if state and not terminal(state) then
      for g in string.gmatch(redis.call('HGET', key, 'children') or '', '[^,]+') do
        pending[#pending + 1] = g
      end
      redis.call('SET', prefix .. KEY.cancel .. id, '1', 'EX', ttl)
      -- emit() and touch() write to the job these name: point them at this one
      job, stream = key, prefix .. KEY.stream .. id
      channel, head = prefix .. KEY.events .. id, '{"job_id":' .. cjson.encode(id) .. ',"seq":'
      if state == 'queued' or state == 'retrying' or state == 'input_required' then
        redis.call('HSET', job, 'state', 'cancelled', 'finished_at', now)
        status('cancelled')
        touch()
        rollup(prefix, 'cancelled')
      elseif orphaned and redis.call('HGET', key, 'inline') == '1' then
        local queue = redis.call('HGET', key, 'queue')
        if state == 'running' and queue then
          redis.call('HINCRBY', prefix .. KEY.taken, queue, -1)
        end
        redis.call('HSET', job, 'state', 'failed', 'finished_at', now, 'error', orphaned)
        redis.call('ZREM', prefix .. KEY.running, id)
        status('failed', ',"error":' .. orphaned)
        touch()
        rollup(prefix, 'failed', redis.call('HGET', key, 'started_at'))
      else
        redis.call('PUBLISH', prefix .. KEY.cancel_channel, id)
      end
    end
  end
  job, stream, channel, head = saved[1], saved[2], saved[3], saved[4]
end
