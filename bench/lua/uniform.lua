-- Scenario (u): the wide working set. BENCH_UNIFORM_LINKS links L0000001.. (10,000) requested
-- uniformly at random, every request from a different visitor: a fresh client address in
-- X-Forwarded-For (the harness trusts loopback as a proxy), the browser mix of agents.lua.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
dofile(os.getenv("BENCH_LUA_DIR") .. "/agents.lua")
local n = tonumber(os.getenv("BENCH_UNIFORM_LINKS") or "10000")
local visitor = 0
function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
  visitor = math.random(0, 4000000)
end
function request()
  visitor = visitor + 1
  local h = visitor_headers()
  h["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.floor(visitor / 65536) % 256,
    math.floor(visitor / 256) % 256, visitor % 256)
  return wrk.format("GET", string.format("/L%07d", math.random(1, n)), h)
end
