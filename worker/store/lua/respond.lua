-- Store the answer to a job's question (``ctx.ask``). KEYS 1-3 as every job
-- script. ARGV 6: the question's number, 7: the answer (JSON, checked
-- against the question's schema by the caller).
-- The job goes ``queued`` to run again; its waiting message is brought
-- forward by the caller (delay_wake.lua). Returns ``ok``, or why not:
-- ``not_asked``, ``answered`` or the state the job is in.
-- include: prelude
-- The arguments, by name (the header above says what each is).
local number = ARGV[6]
local answer = ARGV[7]

local state = redis.call('HGET', job, 'state')
if state ~= 'input_required' then return state or 'missing' end
if not redis.call('HGET', job, 'ask:' .. number) then return 'not_asked' end
if redis.call('HSETNX', job, 'answer:' .. number, answer) == 0 then return 'answered' end
redis.call('HSET', job, 'state', 'queued', 'notice', 'answered: queued to go on')
status('queued', ',"answered":' .. number)
touch()
return 'ok'
