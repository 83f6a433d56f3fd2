-- Scenario (d): random codes that were never created (a scan): every one answers 404.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
local chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
end
function request()
  local t = {}
  for i = 1, 7 do
    local r = math.random(1, 62)
    t[i] = chars:sub(r, r)
  end
  return wrk.format("GET", "/" .. table.concat(t))
end
