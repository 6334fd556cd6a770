#!/bin/sh
# The production loop for one image: run it under BASELINE in complain mode (calls BASELINE
# lacks are allowed, and the kernel logs them), absorb what it logged into BASELINE (followed
# from before the container starts), and gate on the difference as profile-gate.sh does.
#
#   complain-soak.sh IMAGE BASELINE [-- CMD ARGS...]
#
# PROFILE_SOAK: seconds to follow the container before stopping (default 60);
# PROFILE_RUN_OPTS: more `docker run` options (ports, volumes; split on spaces).
# Writes BASELINE's siblings <name>.log.json (the complain-mode profile), <name>.absorbed.json
# (BASELINE plus what the soak needed) and <name>.absorb.md (the report).
# Exit status: 0 the soak needed nothing BASELINE doesn't allow; 1 it needed more (the diff
# names it: review, then adopt <name>.absorbed.json); 2 error.
set -u
if [ $# -lt 2 ]; then
    echo "usage: $0 IMAGE BASELINE [-- CMD ARGS...]" >&2
    exit 2
fi
image=$1
baseline=$2
shift 2
[ "${1:-}" = "--" ] && shift
complain="${baseline%.json}.log.json"
absorbed="${baseline%.json}.absorbed.json"
name="profile-soak-$$"

# BASELINE as it is (nothing to absorb), in complain mode.
msg=$(profile absorb "$baseline" --log - --default-action log -o "$complain" </dev/null 2>&1) ||
    { echo "$msg" >&2; exit 2; }
# shellcheck disable=SC2086
docker create --name "$name" --security-opt "seccomp=$complain" ${PROFILE_RUN_OPTS:-} \
    "$image" "$@" >/dev/null || exit 2
# absorb follows the created container before it starts, so that every record of its run is
# read as it happens (the kernel log keeps only 10 records per 5 s). Until the container
# exits, or SIGINT after PROFILE_SOAK seconds: absorb writes either way.
said=$(mktemp)
timeout --preserve-status -s INT "${PROFILE_SOAK:-60}" \
    profile absorb "$complain" --follow --container "$name" \
    -o "$absorbed" --report "${baseline%.json}.absorb.md" 2>"$said" &
absorb=$!
tries=0
until grep -q '^profile: following' "$said"; do
    if ! kill -0 "$absorb" 2>/dev/null || [ "$tries" -ge 600 ]; then
        break
    fi
    tries=$((tries + 1))
    sleep 0.1
done
docker start "$name" >/dev/null || kill -INT "$absorb" 2>/dev/null
wait "$absorb"
status=$?
cat "$said" >&2
rm -f "$said"
docker rm -f "$name" >/dev/null 2>&1
[ "$status" -eq 0 ] || exit 2

profile diff "$baseline" "$absorbed"
gate=$?
[ "$gate" -eq 1 ] && echo "complain-soak: $image needed what $baseline does not allow (see above)" >&2
[ "$gate" -le 1 ] || gate=2
exit "$gate"
