-- wrk script: authenticated GET /v1/products/<random seeded id> through the edge.
-- Env: WRK_TOKEN (bearer token), WRK_IDS_FILE (one product id per line).
-- done() prints one machine-readable RESULT line (latency in microseconds), like the Node
-- peer's bench/random-product.lua, so the numbers compare line for line.
local token = os.getenv("WRK_TOKEN") or ""
local ids = {}
for line in io.lines(os.getenv("WRK_IDS_FILE")) do
  if #line > 0 then ids[#ids + 1] = line end
end

local thread_counter = 0
function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("tid", thread_counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Accept"] = "application/json"
end

function request()
  return wrk.format("GET", "/v1/products/" .. ids[math.random(1, #ids)])
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f requests=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d non2xx=%d connect_err=%d read_err=%d write_err=%d timeout=%d\n",
    summary.requests / secs, summary.requests,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
