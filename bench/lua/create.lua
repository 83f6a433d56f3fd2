-- Scenario (e): durable creates, POST /api/v1/links with random codes.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
local key = os.getenv("BENCH_KEY")
local counter = 0
local tag = tostring({}):sub(8)
function request()
  counter = counter + 1
  local body = string.format('{"url":"https://example.com/created/%s/%d"}', tag, counter)
  return wrk.format("POST", "/api/v1/links", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end
