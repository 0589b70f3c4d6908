-- A run records an artifact it wrote. KEYS 1-3 as every job script. ARGV 6:
-- the record's field (``artifact:<name>``), 7: the artifact's JSON, 8: the
-- run's delivery token. Returns 1, or 0 (nothing written) when a later
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
