-- Scenario (g) with wrk (the smoke run): uniformly random existing codes S00000001..BENCH_LINKS.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
local n = tonumber(os.getenv("BENCH_LINKS") or "1000")
function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
end
function request()
  return wrk.format("GET", string.format("/S%08d", math.random(1, n)))
end
