-- Scenarios (b)/(c): BENCH_LINKS links L0000001.., requests Zipf-distributed with s = 1.0.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
dofile(os.getenv("BENCH_LUA_DIR") .. "/agents.lua")
local n = tonumber(os.getenv("BENCH_LINKS") or "100000")
local s = tonumber(os.getenv("BENCH_ZIPF_S") or "1.0")
local cdf = {}
function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
  local total = 0
  for k = 1, n do
    total = total + 1 / (k ^ s)
    cdf[k] = total
  end
  for k = 1, n do cdf[k] = cdf[k] / total end
end
local function sample()
  local u = math.random()
  local lo, hi = 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end
function request()
  return wrk.format("GET", string.format("/L%07d", sample()), visitor_headers())
end
