-- Return expired leases to the queue (or fail them after max attempts).
-- Returns the number of expired leases handled.
return reap()
