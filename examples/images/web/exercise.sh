#!/bin/sh
# Exercises the web example while `profile train` records it (which starts it once the server
# answers on its published port): fetches the page a few times, and reads it once more through
# `docker exec` (processes started that way run under the same profile and are recorded too).
set -eu
url="http://127.0.0.1:${PROFILE_PORT_8080:-${PORT:-18080}}/"
for _ in 1 2 3; do
    busybox wget -q -O - "$url" | grep -q "hello from profile"
done
docker exec "$PROFILE_CONTAINER_ID" cat /www/index.html | grep -q "hello from profile"
echo "exercise: served and exec'd fine" >&2
