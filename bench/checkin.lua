-- wrk script for the check-in benchmark: every request checks in a different parcel.
-- wrk -t T -s bench/checkin.lua URL -- FIRST LAST SITES FIRST_SITE_ID TOKEN T
-- Parcel n is BENCH%08d, announced to site FIRST_SITE_ID + n % SITES. Thread i of T sends
-- parcels FIRST + i, FIRST + i + T, ...; a thread that reaches LAST stops (reported).
threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  first, last = tonumber(args[1]), tonumber(args[2])
  nsites, site0 = tonumber(args[3]), tonumber(args[4])
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[5]}
  stride = tonumber(args[6])
  sent, exhausted, statuses = 0, 0, {}
end

function request()
  local n = first + id + sent * stride
  if n >= last then
    exhausted = 1
    wrk.thread:stop()
  end
  sent = sent + 1
  local path = "/api/v1/sites/" .. (site0 + n % nsites) .. "/check-ins"
  return wrk.format("POST", path, headers, string.format('{"tracking_number":"BENCH%08d"}', n))
end

function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total, exh, st = 0, 0, {}
  for _, t in ipairs(threads) do
    total = total + t:get("sent")
    exh = exh + t:get("exhausted")
    for k, v in pairs(t:get("statuses")) do st[k] = (st[k] or 0) + v end
  end
  local codes = {}
  for k, v in pairs(st) do table.insert(codes, string.format('"%d": %d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "sent": %d, "exhausted": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"statuses": {%s}, "latency_us": {"p50": %d, "p95": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, total, exh, e.connect, e.read, e.write, e.status,
    e.timeout, table.concat(codes, ", "), latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
