-- Record a spend (``ctx.spend``) against a job, every job above it in its call
-- tree, and its owner's quota, or refuse it whole. KEYS 1-3 as every job
-- script; 4: the quotas hash (owner -> {"<unit>": [limit, period seconds]}).
-- ARGV 6: the key prefix, 7: the unit, 8: the amount, 9: the job's skill's
-- own ceiling for the unit ('' for none), 10: the run's delivery token, 11:
-- how many ancestors to walk at most, 12: the quota of owners without their
-- own (JSON as in KEYS 4; '' for none).
-- Returns {'ok', left} (left: room under the nearest ceiling, '' for none),
-- {'exceeded', job id, spent, ceiling} for the first ceiling it would cross,
-- {'quota', owner, limit, renews at} past the owner's quota, {'superseded'}.
-- Nothing is written unless every check passes, so parallel spends of one
-- tree (on any workers) never take it past a ceiling.
-- include: prelude
-- The arguments, by name (the header above says what each is).
local quotas = KEYS[4]
local prefix = ARGV[6]
local unit = ARGV[7]
local amount = tonumber(ARGV[8])
local own_ceiling = ARGV[9]
local delivery = ARGV[10]
local max_depth = tonumber(ARGV[11])
local default_quota = ARGV[12]

if superseded(delivery) then return {'superseded'} end
local budget_field, spent_field = 'budget:' .. unit, 'spent:' .. unit
local chain, owner, key, left = {}, nil, job, nil
local function room(ceiling, spent)
  local free = ceiling - spent - amount
  if not left or free < left then left = free end
end
for depth = 0, max_depth do
  local f = redis.call('HMGET', key, budget_field, spent_field, 'parent', 'owner', 'state',
                       'raised:' .. unit)
  if not f[5] then break end  -- an ancestor whose record has expired
  local ceiling = tonumber(f[1])
  -- The skill's own ceiling holds unless the job's owner raised this one.
  if depth == 0 and own_ceiling ~= '' and not f[6] then
    local given = tonumber(own_ceiling)
    if not ceiling or given < ceiling then ceiling = given end
  end
  local spent = tonumber(f[2]) or 0
  if ceiling then
    if spent + amount > ceiling * (1 + 1e-12) then
      return {'exceeded', string.sub(key, #prefix + #KEY.job + 1), tostring(spent), tostring(ceiling)}
    end
    room(ceiling, spent)
  end
  chain[#chain + 1] = key
  if not owner and f[4] and f[4] ~= '' then owner = f[4] end
  if not f[3] or f[3] == '' then break end
  key = prefix .. KEY.job .. f[3]
end
local quota_key, quota_ttl, quota_used = nil, nil, 0
if owner then
  local defined = redis.call('HGET', quotas, owner) or default_quota
  if defined and defined ~= '' then
    local quota = cjson.decode(defined)[unit]
    if quota then
      local limit, period = tonumber(quota[1]), tonumber(quota[2])
      local start = math.floor(tonumber(now) / period) * period
      quota_key = prefix .. KEY.quota .. redis.sha1hex(owner) .. ':' .. unit .. ':'
                  .. string.format('%d', start)
      quota_used = tonumber(redis.call('GET', quota_key)) or 0
      if quota_used + amount > limit * (1 + 1e-12) then
        return {'quota', owner, tostring(limit), string.format('%d', start + period)}
      end
      room(limit, quota_used)
      quota_ttl = math.ceil(period) * 2
    end
  end
end
local mine = 0
for i, record in ipairs(chain) do
  local total = redis.call('HINCRBYFLOAT', record, spent_field, amount)
  if i == 1 then mine = tonumber(total) end
end
-- The quota's counter is written whole, never with INCRBYFLOAT: from a script
-- on Redis 6.2 (glibc's malloc) that corrupts the server's heap (it rewrites
-- its arguments as SET key value KEEPTTL, and the script client's cached
-- argument array, reallocated for the fourth, keeps its old recorded size).
-- '%.17g' gives the double back exactly.
if quota_key then
  redis.call('SET', quota_key, string.format('%.17g', quota_used + amount), 'EX', quota_ttl)
end
emit(now, '"spend"', cjson.encode({unit = unit, amount = amount, spent = mine, left = left}))
return {'ok', left and tostring(left) or ''}
