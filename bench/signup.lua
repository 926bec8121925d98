-- wrk: one JSON signup per request, each with a new address (thread id + counter), as visitors would.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  prefix = args[1] or "visitor"  -- runs of one benchmark give different prefixes: every address is new
  path = args[2] or "/subscribe"
end

request = function()
  counter = counter + 1
  local body = string.format('{"email": "%s-%d-%d@example.org", "name": "Visitor"}', prefix, id, counter)
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

response = function(status, headers, body)
  if status == 202 then
    accepted = (accepted or 0) + 1
  end
end

done = function(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("accepted") or 0)
  end
  io.write(string.format("ACCEPTED %d\n", total))
end
