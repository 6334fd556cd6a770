#!/bin/sh
# The CI gate for one image: train its profile (several runs), verify it under enforcement, and
# compare it with the committed baseline.
#
#   profile-gate.sh IMAGE BASELINE [profile train options...] [-- CMD ARGS...]
#
# Writes BASELINE's sibling <name>.new.json (the fresh profile) and, when the gate passes,
# <name>.md (its summary, which changes only when the profile does: commit it beside
# BASELINE); a failing gate leaves <name>.md as committed. The fresh summary also goes to
# $PROFILE_GATE_REPORTS/<name>.summary.md and the full report with the comparison to
# $PROFILE_GATE_REPORTS/<name>.md (default: a profile-gate directory in $RUNNER_TEMP or
# $TMPDIR), appended to $GITHUB_STEP_SUMMARY when set.
# Exit status: 0 the image needs nothing BASELINE doesn't allow (or there was no baseline yet:
# the fresh profile is adopted as BASELINE, to be committed); 1 it needs more (the diff names
# it), the workload failed, or the fresh profile did not verify; 2 error.
# PROFILE_RUNS sets the number of training runs (default 3).
# PROFILE_CMD runs profile another way, such as its image (README, "Install"):
#   PROFILE_CMD="docker run --rm --cap-add SYS_ADMIN ... -v $PWD:$PWD -w $PWD profile:0.1.0"
set -u
if [ -n "${PROFILE_CMD:-}" ]; then profile() { $PROFILE_CMD "$@"; }; fi
if [ $# -lt 2 ]; then
    echo "usage: $0 IMAGE BASELINE [train options...] [-- CMD ARGS...]" >&2
    exit 2
fi
image=$1
baseline=$2
shift 2
new="${baseline%.json}.new.json"
summary="${baseline%.json}.md"
reports="${PROFILE_GATE_REPORTS:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/profile-gate}"
mkdir -p "$reports" || exit 2
report="$reports/$(basename "${baseline%.json}").md"
fresh="$reports/$(basename "${baseline%.json}").summary.md"

profile train --image "$image" --runs "${PROFILE_RUNS:-3}" --verify -q --mkdir \
    -o "$new" --summary "$fresh" --report "$report" "$@"
status=$?
if [ "$status" -ne 0 ]; then
    echo "profile-gate: training or verification of $image failed (exit $status); $summary is left as it was, the fresh summary is $fresh" >&2
    [ "$status" -eq 1 ] && exit 1
    exit 2
fi

if [ ! -f "$baseline" ]; then
    mv "$new" "$baseline"
    echo "profile-gate: no baseline yet: adopted the fresh profile as $baseline; commit it" >&2
    gate=0
else
    diff_out=$(profile diff "$baseline" "$new")
    gate=$?
    {
        echo
        echo "## Compared with $baseline"
        echo
        echo '```'
        echo "$diff_out"
        echo '```'
    } >>"$report"
    echo "$diff_out"
    if [ "$gate" -eq 1 ]; then
        echo "profile-gate: $image needs syscalls $baseline does not allow (see above); review, then update the baseline" >&2
    elif [ "$gate" -ne 0 ]; then
        gate=2
    fi
fi
# The summary beside the baseline is the committed one's successor only when the gate passes.
if [ "$gate" -eq 0 ]; then
    cp "$fresh" "$summary" || exit 2
else
    echo "profile-gate: $summary is left as it was; the fresh summary is $fresh" >&2
fi
echo "profile-gate: the full report is in $report" >&2
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat "$report" >>"$GITHUB_STEP_SUMMARY"
fi
exit "$gate"
