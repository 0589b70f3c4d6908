-- Celery's result meta alone (a duplicate delivery rewrites it). ARGV 1 key,
-- 2 meta JSON, 3 ttl, 4 its database ('' for this one), 5 this database.

if ARGV[4] ~= '' then redis.call('SELECT', ARGV[4]) end
redis.call('SET', ARGV[1], ARGV[2], 'EX', ARGV[3])
if ARGV[4] ~= '' then redis.call('SELECT', ARGV[5]) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
