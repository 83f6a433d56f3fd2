-- Scenario (a): one hot link.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
local path = "/" .. (os.getenv("BENCH_HOT_CODE") or "L0000001")
function request()
  return wrk.format("GET", path)
end
