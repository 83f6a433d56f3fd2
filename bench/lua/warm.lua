-- Warm-up: walks every seeded link L0000001..BENCH_LINKS in order (not measured).
local n = tonumber(os.getenv("BENCH_LINKS") or "100000")
local i = 0
function request()
  i = i % n + 1
  return wrk.format("GET", string.format("/L%07d", i))
end
