-- wrk script for bench/run.py. Run with one connection per thread (wrk -tN -cN) so each
-- connection owns one line of BENCH_TOKENS ("user_id access refresh email") and, for
-- refreshes, carries its own family forward: every 200 answer's refresh_token is the
-- token the next refresh of that connection sends.
-- BENCH_MODE: me | refresh | login | mixed | jwks | floor_select | floor_verify | floor_jwks
--             | floor_write | floor_login
-- BENCH_PASSWORD: the password of every bench user. BENCH_CLOSE=1: Connection: close.

local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  mode = os.getenv("BENCH_MODE")
  password = os.getenv("BENCH_PASSWORD")
  close = os.getenv("BENCH_CLOSE") == "1"
  local lines = {}
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    table.insert(lines, line)
  end
  local line = lines[((id - 1) % #lines) + 1]
  user_id, access, refresh, email = line:match("(%S+) (%S+) (%S+) (%S+)")
  errors, lost_family, sent = 0, 0, {me = 0, refresh = 0, login = 0}
  math.randomseed(id * 7919)
end

local function headers(extra)
  local h = extra or {}
  if close then h["Connection"] = "close" end
  return h
end

local function kind_for_request()
  if mode ~= "mixed" then return mode end
  local r = math.random(100)
  if r <= 88 then return "me" elseif r <= 98 then return "refresh" else return "login" end
end

function request()
  last = kind_for_request()
  if sent[last] then sent[last] = sent[last] + 1 end
  if last == "me" then
    return wrk.format("GET", "/auth/me", headers({["Authorization"] = "Bearer " .. access}))
  elseif last == "refresh" then
    return wrk.format("POST", "/auth/refresh", headers({["Content-Type"] = "application/json"}),
                      '{"refresh_token": "' .. refresh .. '"}')
  elseif last == "login" or last == "floor_login" then
    return wrk.format("POST", last == "login" and "/auth/login" or "/login",
                      headers({["Content-Type"] = "application/json"}),
                      '{"email": "' .. email .. '", "password": "' .. password .. '"}')
  elseif last == "floor_select" then
    return wrk.format("GET", "/select/" .. user_id, headers())
  elseif last == "floor_verify" then
    return wrk.format("GET", "/verified/" .. user_id,
                      headers({["Authorization"] = "Bearer " .. access}))
  elseif last == "jwks" or last == "floor_jwks" then
    return wrk.format("GET", last == "jwks" and "/.well-known/jwks.json" or "/jwks", headers())
  else
    return wrk.format("POST", "/write/" .. id, headers({["Content-Type"] = "application/json"}),
                      '{"refresh_token": "' .. refresh .. '"}')
  end
end

function response(status, hdrs, body)
  if status ~= 200 then
    errors = errors + 1
    if last == "refresh" then lost_family = lost_family + 1 end
    return
  end
  if last == "refresh" then
    local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if token then refresh = token else lost_family = lost_family + 1 end
  end
end

function done(summary, latency, requests)
  local errs, lost, me, ref, log = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    errs = errs + t:get("errors")
    lost = lost + t:get("lost_family")
    local s = t:get("sent")
    me, ref, log = me + s.me, ref + s.refresh, log + s.login
  end
  io.write(string.format("BENCH errors=%d lost_family=%d sent_me=%d sent_refresh=%d sent_login=%d\n",
                         errs, lost, me, ref, log))
end
