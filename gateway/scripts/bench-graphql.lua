-- wrk script: the caller's profile (user, last five orders, each item's product name) as one
-- GraphQL request (WRK_MODE=graphql) or as the three JSON requests that fetch the same data
-- (WRK_MODE=json: the user, the orders, one batch of products), sent in turn.
-- Env: WRK_TOKEN, WRK_USER_ID, WRK_PRODUCTS (the orders' product ids, comma-separated).
local token = os.getenv("WRK_TOKEN") or ""
local mode = os.getenv("WRK_MODE") or "graphql"
local user = os.getenv("WRK_USER_ID") or ""
local products = os.getenv("WRK_PRODUCTS") or ""

local query = '{"query":"query($me: String) { getUser(userId: $me) { user { username email '
  .. 'orders(pageSize: 5) { orderId status total { amountMinor currencyCode } '
  .. 'items { productId quantity product { name } } } } } }","variables":{"me":"' .. user .. '"}}'

local batch = "/v2/products:batchGet?" .. products:gsub("([^,]+)", "productIds=%1"):gsub(",", "&")
local paths = { "/v1/users/" .. user, "/v1/orders?pageSize=5", batch }
local turn = 0

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  if mode == "graphql" then
    return wrk.format("POST", "/graphql", nil, query)
  end
  turn = turn % #paths + 1
  return wrk.format("GET", paths[turn])
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f requests=%d p50_us=%d p99_us=%d non2xx=%d\n",
    summary.requests / secs, summary.requests,
    latency:percentile(50), latency:percentile(99), e.status))
end
