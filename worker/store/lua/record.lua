-- A run records a field of its job: an artifact it wrote (``artifact:<name>``)
-- or a step it finished (``step:<name>``). KEYS 1-3 as every job script.
-- ARGV 6: the record's field, 7: its JSON, 8: the run's delivery token. Returns 1, or 0 (nothing written) when a later
-- delivery took the job over.
-- include: prelude
-- The arguments, by name (the header above says what each is).
local field = ARGV[6]
local info = ARGV[7]
local delivery = ARGV[8]

if superseded(delivery) then return 0 end
redis.call('HSET', job, field, info)
touch()
return 1
