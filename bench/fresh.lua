-- wrk script: every request carries a different pre-minted JWT (fresh
-- tokens: no cache hits until the pool wraps). Threads take disjoint slices.
local counter = 0
setup = function(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
local tokens, i, step = {}, 0, 1
init = function(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  step = tonumber(args[2]) or 1
  i = tid or 0
end
request = function()
  i = i + step
  if i > #tokens then i = (i % step) + 1 end
  return wrk.format("GET", "/jwt/orders", { ["Authorization"] = "Bearer " .. tokens[i] })
end
