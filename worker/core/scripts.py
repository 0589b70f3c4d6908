"""Lua scripts that make each step of a job one Redis round trip.

Every script shares ``emit``: it allocates the event's ``seq`` from the job
record (so any process can write a job's events without gaps), appends the
envelope to the replay stream with stream id ``0-<seq>`` (so a reader can
resume after any seq with XRANGE) and publishes it. The envelope is built by
concatenating pieces the caller already JSON-encoded.

Common KEYS: 1 job record, 2 stream, 3 pub/sub channel.
Common ARGV: 1 stream maxlen, 2 stream ttl, 3 record ttl, 4 envelope head
(``{"job_id":"<id>","seq":``), 5 now (Unix seconds).
"""

from __future__ import annotations

_PRELUDE = r"""
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
-- The listing indexes (see ``worker.core.listing``): every job by creation
-- time, by skill, and the running ones by start time.
local function job_id_of(prefix) return string.sub(job, #prefix + 6) end
local function index_new(prefix, skill)
  local id = job_id_of(prefix)
  for _, index in ipairs({prefix .. ':jobs', prefix .. ':jobs:skill:' .. skill}) do
    redis.call('ZADD', index, now, id)
    redis.call('EXPIRE', index, record_ttl)
  end
end
local function index_running(prefix, on)
  if on then
    redis.call('ZADD', prefix .. ':running', now, job_id_of(prefix))
  else
    redis.call('ZREM', prefix .. ':running', job_id_of(prefix))
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
local function terminal(state)
  return state == 'succeeded' or state == 'failed' or state == 'cancelled'
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
    local key = prefix .. ':job:' .. id
    local state = redis.call('HGET', key, 'state')
    if state and not terminal(state) then
      for g in string.gmatch(redis.call('HGET', key, 'children') or '', '[^,]+') do
        pending[#pending + 1] = g
      end
      redis.call('SET', prefix .. ':cancel:' .. id, '1', 'EX', ttl)
      -- emit() and touch() write to the job these name: point them at this one
      job, stream = key, prefix .. ':stream:' .. id
      channel, head = prefix .. ':events:' .. id, '{"job_id":' .. cjson.encode(id) .. ',"seq":'
      if state == 'queued' or state == 'retrying' then
        redis.call('HSET', job, 'state', 'cancelled', 'finished_at', now)
        status('cancelled')
        touch()
      elseif orphaned and redis.call('HGET', key, 'inline') == '1' then
        local queue = redis.call('HGET', key, 'queue')
        if state == 'running' and queue then
          redis.call('HINCRBY', prefix .. ':taken', queue, -1)
        end
        redis.call('HSET', job, 'state', 'failed', 'finished_at', now, 'error', orphaned)
        redis.call('ZREM', prefix .. ':running', id)
        status('failed', ',"error":' .. orphaned)
        touch()
      else
        redis.call('PUBLISH', prefix .. ':cancel', id)
      end
    end
  end
  job, stream, channel, head = saved[1], saved[2], saved[3], saved[4]
end
"""

# KEYS 4: cancel flag, 5: the job's consumed-signature marker, 6: the
# per-queue count of running jobs (the backlog's "taken"). ARGV 6: skill,
# 7: worker hostname, 8: queue, 9: a token unique to this delivery, so a call
# retried after a lost reply does not count the attempt twice; 10: the most
# deliveries a job may have, 11: the error JSON recorded when a delivery is
# over that limit, 12: the key prefix, 13: the cancel flag's ttl, 14: the
# error JSON of children orphaned by the last delivery (see end_children).
# Returns {decision, attempts, state}: decision is "run", "cancelled" (the
# cancel flag was set: the job is finalised here), "done" (a duplicate
# delivery of a finished job), "replayed" (a signed call of this job already
# finished, though its record is gone: not run again) or "failed" (over the
# delivery limit: every earlier delivery ended with its worker dying).
START = (
    _PRELUDE
    + r"""
local state = redis.call('HGET', job, 'state')
if terminal(state) then
  return {'done', tonumber(redis.call('HGET', job, 'attempts') or '0'), state}
end
-- When the job could first have started: its eta, else its submit.
local function ready_at()
  return redis.call('HGET', job, 'eta') or redis.call('HGET', job, 'created_at') or ''
end
if state == 'running' and redis.call('HGET', job, 'delivery') == ARGV[9] then
  return {'run', tonumber(redis.call('HGET', job, 'attempts')), 'running',
          tonumber(redis.call('HGET', job, 'retries') or '0'), ready_at()}
end
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {'replayed', tonumber(redis.call('HGET', job, 'attempts') or '0'), state or ''}
end
if not state then index_new(ARGV[12], ARGV[6]) end  -- from a producer that wrote no record
redis.call('HSETNX', job, 'created_at', now)
redis.call('HSET', job, 'skill', ARGV[6], 'queue', ARGV[8])
local function untake()
  if state == 'running' then
    redis.call('HINCRBY', KEYS[6], ARGV[8], -1)
    index_running(ARGV[12], false)
  end
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  untake()
  redis.call('HSET', job, 'state', 'cancelled', 'finished_at', now, 'worker', ARGV[7])
  status('cancelled')
  touch()
  end_children(ARGV[12], ARGV[13], ARGV[14])
  return {'cancelled', tonumber(redis.call('HGET', job, 'attempts') or '0'), 'cancelled'}
end
local attempts = redis.call('HINCRBY', job, 'attempts', 1)
local retries = tonumber(redis.call('HGET', job, 'retries') or '0')
-- Deliveries beyond the scheduled retries are the ones whose worker died.
if attempts - retries > tonumber(ARGV[10]) then
  untake()
  redis.call('HSET', job, 'state', 'failed', 'finished_at', now, 'error', ARGV[11])
  redis.call('HDEL', job, 'notice')
  status('failed', ',"error":' .. ARGV[11])
  touch()
  end_children(ARGV[12], ARGV[13], ARGV[14])
  return {'failed', attempts, 'failed', retries}
end
if attempts - retries > 1 then
  status('retrying', ',"attempt":' .. attempts)
  -- The last delivery's children: its inline ones died with its process.
  end_children(ARGV[12], ARGV[13], ARGV[14])
end
if state ~= 'running' then redis.call('HINCRBY', KEYS[6], ARGV[8], 1) end
index_running(ARGV[12], true)
redis.call('HSET', job, 'state', 'running', 'started_at', now, 'worker', ARGV[7],
           'delivery', ARGV[9], 'emitted', 0)
redis.call('HDEL', job, 'finished_at', 'result', 'error', 'notice', 'next_run_at')
status('running', ',"attempt":' .. attempts .. ',"worker":' .. cjson.encode(ARGV[7]))
touch()
return {'run', attempts, 'running', retries, ready_at()}
"""
)

# ARGV 6: n pending events, 7: the delivery's number of the first of them
# (the writer counts its events 1, 2, 3...), 8: their envelope tails joined
# by newlines (a tail is the envelope after its seq, encoded by the writer;
# JSON text never holds a raw newline), 9: the batch's last progress message
# ('' if none). One string instead of one argument per event: Redis parses
# and redis-py packs a few large arguments far faster than thousands of small
# ones. Events the record says were already written in this delivery are
# skipped, so a call retried after a lost reply writes nothing twice. The
# seqs of the batch come from one HINCRBY.
EMIT = (
    _PRELUDE
    + r"""
local n = tonumber(ARGV[6])
local first = tonumber(ARGV[7])
local tails = ARGV[8]
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
"""
)

# KEYS 4: the per-queue count of running jobs.
# ARGV 6: final state, 7: result json ('' if none), 8: error json ('' if none),
# 9: worker hostname, 10: Celery result meta key ('' to leave results to
# Celery), 11: the meta JSON, 12: its ttl, 13: the consumed-signature marker
# to set ('' for an unsigned call), 14: its ttl (until the signature expires),
# 15: the database of Celery's results when it is not this one ('' if it is),
# 16: this database (to SELECT back), 17: the key prefix, 18: the cancel
# flag's ttl, 19: the error JSON of children it leaves behind (end_children).
# Returns the state the record ends in: a record that is already terminal
# (another process finalised it) is left as it is, so the terminal status
# event stays the job's last event.
FINISH = (
    _PRELUDE
    + r"""
local current = redis.call('HGET', job, 'state')
if terminal(current) then
  return current
end
local state = ARGV[6]
if current == 'running' then
  local queue = redis.call('HGET', job, 'queue')
  if queue then redis.call('HINCRBY', KEYS[4], queue, -1) end
end
index_running(ARGV[17], false)
redis.call('HSETNX', job, 'created_at', now)
redis.call('HSET', job, 'state', state, 'finished_at', now, 'worker', ARGV[9])
local extra = ''
if ARGV[7] ~= '' then redis.call('HSET', job, 'result', ARGV[7]) end
if ARGV[8] ~= '' then
  redis.call('HSET', job, 'error', ARGV[8])
  extra = ',"error":' .. ARGV[8]
end
status(state, extra)
touch()
if ARGV[10] ~= '' then
  if ARGV[15] ~= '' then redis.call('SELECT', ARGV[15]) end
  redis.call('SET', ARGV[10], ARGV[11], 'EX', ARGV[12])
  if ARGV[15] ~= '' then redis.call('SELECT', ARGV[16]) end
  redis.call('PUBLISH', ARGV[10], ARGV[11])
end
if ARGV[13] ~= '' and tonumber(ARGV[14]) > 0 then
  redis.call('SET', ARGV[13], '1', 'EX', ARGV[14])
end
end_children(ARGV[17], ARGV[18], ARGV[19])  -- children never outlive their parent
return state
"""
)

# Celery's result meta alone (a duplicate delivery rewrites it). ARGV 1 key,
# 2 meta JSON, 3 ttl, 4 its database ('' for this one), 5 this database.
CELERY_META = r"""
if ARGV[4] ~= '' then redis.call('SELECT', ARGV[4]) end
redis.call('SET', ARGV[1], ARGV[2], 'EX', ARGV[3])
if ARGV[4] ~= '' then redis.call('SELECT', ARGV[5]) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""

# Client side. KEYS 1: job record. ARGV 1: skill, 2: queue, 3: now, 4: ttl,
# 5: a notice for pollers ('' for none; START clears it).
# Returns 1 if the record was created, 0 if the job id already exists.
# KEYS 1: the job record, 2: the queue's list ('' with no message); for a
# child job 3: the parent's record, 4: the parent's cancel flag, 5: the
# child's cancel flag.
# ARGV 1: skill, 2: queue, 3: now, 4: record ttl, 5: notice ('' if none),
# 6: the Celery message to queue ('' when Celery publishes it), 7: the
# broker's database when it is not this one ('' if it is), 8: this database,
# 9: the parent job ('' for a job nobody called), 10: the child's call depth,
# 11: the cancel flag's ttl, 12: the job id, 13: '1' when the child runs
# inline in its caller's process, 14: the job's owner ('' for none; KEYS 6 is
# then the owner's index). KEYS 7: the index of all jobs, 8: the skill's
# index, 9: the idempotency key's marker ('' for none). ARGV 15: when the job
# may start (Unix seconds; '' to start at once), 16: its priority ('' for 0).
# Returns the existing job's id when the idempotency key already made one.
# Returns 0 when the record exists (the job was submitted: nothing is queued
# twice), 1 when the job is recorded (and its message queued). A child is
# listed in its parent's ``children`` (in start order), and a child of a
# parent being cancelled is cancelled before it starts.
SUBMIT = r"""
if KEYS[9] and KEYS[9] ~= '' then
  local existing = redis.call('GET', KEYS[9])
  if existing then return existing end  -- the job this idempotency key made
end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[6] ~= '' then
  -- First: a script stops at an error without undoing what it wrote, and a
  -- record without its message would stay queued forever.
  if ARGV[7] ~= '' then redis.call('SELECT', ARGV[7]) end
  redis.call('LPUSH', KEYS[2], ARGV[6])
  if ARGV[7] ~= '' then redis.call('SELECT', ARGV[8]) end
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'skill', ARGV[1], 'queue', ARGV[2],
           'created_at', ARGV[3], 'attempts', 0, 'seq', 0)
if ARGV[15] and ARGV[15] ~= '' then redis.call('HSET', KEYS[1], 'eta', ARGV[15]) end
if ARGV[16] and ARGV[16] ~= '' then redis.call('HSET', KEYS[1], 'priority', ARGV[16]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'notice', ARGV[5]) end
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[1], 'parent', ARGV[9], 'depth', ARGV[10], 'inline', ARGV[13])
  local children = redis.call('HGET', KEYS[3], 'children')
  redis.call('HSET', KEYS[3], 'children', children and (children .. ',' .. ARGV[12]) or ARGV[12])
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('SET', KEYS[5], '1', 'EX', ARGV[11])
  end
end
if ARGV[14] ~= '' then
  -- Owned (the HTTP server's callers): the record names its owner, and the
  -- owner's index lists it newest first; entries older than the retention
  -- are trimmed here, so the index costs O(page) to read and never grows
  -- past what Redis still holds.
  redis.call('HSET', KEYS[1], 'owner', ARGV[14])
  local index = KEYS[6]
  redis.call('ZADD', index, ARGV[3], ARGV[12])
  redis.call('ZREMRANGEBYSCORE', index, '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
  redis.call('EXPIRE', index, ARGV[4])
end
local oldest = tonumber(ARGV[3]) - tonumber(ARGV[4])
for _, index in ipairs({KEYS[7], KEYS[8]}) do
  redis.call('ZADD', index, ARGV[3], ARGV[12])
  redis.call('ZREMRANGEBYSCORE', index, '-inf', oldest)  -- records that have expired
  redis.call('EXPIRE', index, ARGV[4])
end
if KEYS[9] and KEYS[9] ~= '' then redis.call('SET', KEYS[9], ARGV[12], 'EX', ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS 4: cancel flag. ARGV 6: cancel channel, 7: job id, 8: flag ttl, 9: "1"
# to set the flag even for a job with no record yet (a revoke of a raw
# producer's job that no worker has received), 10: the key prefix. A queued
# job is finalised at once (START then refuses to run it); a running one is
# flagged and its id published to the worker processes. Either way its
# unfinished descendants (children of ``ctx.call``, theirs, ...) are cancelled
# the same way (``end_children``). Returns "missing", "finished",
# "cancelled" (was queued) or "cancelling" (was running).
CANCEL = (
    _PRELUDE
    + r"""
local state = redis.call('HGET', job, 'state')
if not state and ARGV[9] ~= '1' then return 'missing' end
if terminal(state) then return 'finished' end
redis.call('SET', KEYS[4], '1', 'EX', ARGV[8])
end_children(ARGV[10], ARGV[8], nil)
if state == 'queued' or state == 'retrying' then
  -- Waiting (to start, or for its retry): no worker holds it, so it ends here;
  -- a delivery that comes later finds it finished and runs nothing.
  redis.call('HSET', job, 'state', 'cancelled', 'finished_at', now)
  redis.call('HDEL', job, 'next_run_at')
  status('cancelled')
  touch()
  return 'cancelled'
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 'cancelling'
"""
)

# Undo a SUBMIT whose Celery message was refused: the same KEYS as SUBMIT.
# ARGV 1: the job id. Removes the record, its index entries and its
# idempotency marker, so a retry of the submission starts afresh.
UNSUBMIT = r"""
redis.call('DEL', KEYS[1])
for i = 6, 8 do
  if KEYS[i] and KEYS[i] ~= '' then redis.call('ZREM', KEYS[i], ARGV[1]) end
end
if KEYS[9] and KEYS[9] ~= '' then redis.call('DEL', KEYS[9]) end
return 1
"""

# A failed attempt that will run again. KEYS 1-3 as every job script, 4: the
# per-queue count of running jobs. ARGV 6: the attempt's error JSON, 7: when
# the next attempt runs (Unix seconds), 8: retries scheduled so far, this one
# included, 9: the key prefix, 10: the cancel flag's ttl, 11: the error JSON
# of children it leaves behind. Appends the error to ``errors`` (every
# attempt's, in order) and emits a ``retrying`` status. Returns the state the
# record is in: ``retrying``, or the terminal state another process set.
RETRY = (
    _PRELUDE
    + r"""
local current = redis.call('HGET', job, 'state')
if current ~= 'running' then return current or 'missing' end
local queue = redis.call('HGET', job, 'queue')
if queue then redis.call('HINCRBY', KEYS[4], queue, -1) end
index_running(ARGV[9], false)
local errors = redis.call('HGET', job, 'errors')
if errors and errors ~= '[]' then
  errors = string.sub(errors, 1, -2) .. ',' .. ARGV[6] .. ']'
else
  errors = '[' .. ARGV[6] .. ']'
end
redis.call('HSET', job, 'state', 'retrying', 'retries', ARGV[8], 'next_run_at', ARGV[7],
           'errors', errors)
status('retrying', ',"attempt":' .. (tonumber(ARGV[8]) + 1) .. ',"next_run_at":' .. ARGV[7]
       .. ',"error":' .. ARGV[6])
touch()
end_children(ARGV[9], ARGV[10], ARGV[11])
return 'retrying'
"""
)

# A delayed job a plain Celery producer sent (``countdown``/``eta``), as the
# worker receives it: the worker holds it until its eta, and until then the
# job is ``queued`` with its ``eta``, so status, events and cancel work.
# KEYS 1: the record, 2: the index of all jobs, 3: the skill's index.
# ARGV 1: skill, 2: queue, 3: now, 4: record ttl, 5: eta, 6: the job id.
# Returns 1 if the record was written, 0 if one existed.
RECEIVED = r"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'skill', ARGV[1], 'queue', ARGV[2],
           'created_at', ARGV[3], 'attempts', 0, 'seq', 0, 'eta', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
for _, index in ipairs({KEYS[2], KEYS[3]}) do
  redis.call('ZADD', index, ARGV[3], ARGV[6])
  redis.call('EXPIRE', index, ARGV[4])
end
return 1
"""
