#!/usr/bin/env bash
# Wait (at most 30 s) until something listens on 127.0.0.1:$1, e.g. the sandboxes for the worker.
for _ in $(seq 1 150); do
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exit 0
  sleep 0.2
done
echo "nothing listens on 127.0.0.1:$1" >&2
exit 1
