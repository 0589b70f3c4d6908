-- Raise a ceiling a spend would cross, as its owner answered (``on_budget="ask"``).
-- KEYS 1-3 as every job script (the job that asked); 4: the record of the job
-- whose ceiling is raised (the asking job or one above it in its call tree).
-- ARGV 6: the unit, 7: by how much, 8: the ceiling that was crossed, 9: the
-- question's number (a raise is made once per question, however often the
-- job runs again), 10: the run's delivery token.
-- The raised record's ``budget:<unit>`` becomes the crossed ceiling plus the
-- raise, and ``raised:<unit>`` marks it raised by its owner.
-- Returns 'raised', 'done' (this question's raise was made before) or
-- 'superseded'.
-- include: prelude
-- The arguments, by name (the header above says what each is).
local raised_record = KEYS[4]
local unit = ARGV[6]
local by = tonumber(ARGV[7])
local crossed = tonumber(ARGV[8])
local number = ARGV[9]
local delivery = ARGV[10]

if superseded(delivery) then return 'superseded' end
if redis.call('HSETNX', job, 'raised:' .. number, ARGV[7]) == 0 then return 'done' end
local field = 'budget:' .. unit
local ceiling = crossed + by
local current = tonumber(redis.call('HGET', raised_record, field))
if current and current > ceiling then ceiling = current end
-- Marked raised: the skill's own ceiling no longer caps this one (spend.lua).
redis.call('HSET', raised_record, field, tostring(ceiling), 'raised:' .. unit, '1')
emit(now, '"budget"', cjson.encode({unit = unit, raised_by = by, ceiling = ceiling}))
return 'raised'
