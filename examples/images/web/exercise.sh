#!/bin/sh
# Exercises the web example while `profile train` records it: waits for the server on
# 127.0.0.1:$PORT, fetches the page a few times, and reads it once more through `docker exec`
# (processes started that way run under the same profile and are recorded too).
set -eu
url="http://127.0.0.1:${PORT:-18080}/"
i=0
until busybox wget -q -O /dev/null "$url" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 100 ] || { echo "exercise: $url never answered" >&2; exit 1; }
    sleep 0.1
done
for _ in 1 2 3; do
    busybox wget -q -O - "$url" | grep -q "hello from profile"
done
docker exec "$PROFILE_CONTAINER_ID" cat /www/index.html | grep -q "hello from profile"
echo "exercise: served and exec'd fine" >&2
