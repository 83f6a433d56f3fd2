-- Scenario (a): one hot link, visited by the mix of browsers in agents.lua.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
dofile(os.getenv("BENCH_LUA_DIR") .. "/agents.lua")
local path = "/" .. (os.getenv("BENCH_HOT_CODE") or "L0000001")
function request()
  return wrk.format("GET", path, visitor_headers())
end
