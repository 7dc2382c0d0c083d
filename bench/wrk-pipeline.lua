-- wrk script: HTTP/1.1 pipelining, as the TechEmpower plaintext test runs it. Every write
-- carries DEPTH requests (16 unless given: `wrk ... URL -- DEPTH`); wrk counts them in the
-- request it is handed and reads as many responses before it writes again.

init = function(args)
   local depth = tonumber(args[1]) or 16
   local requests = {}
   for i = 1, depth do
      requests[i] = wrk.format()
   end
   batch = table.concat(requests)
end

request = function()
   return batch
end
