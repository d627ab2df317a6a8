#!/usr/bin/env bash
# Usage: scripts/ray-tests.sh PYTHON [PYTEST ARGS...]
#
# Runs the Ray tests (tests/pipeline/test_ray.py) in a pytest process of their own. A Ray
# driver whose core worker loses its cluster leaves the process with _exit(1) and no report
# (pytest's captured output dies with it), so the rest of the suite runs without Ray in its
# process, and if this one dies, the tail of the Ray head's logs is printed as evidence and the
# head's leftover processes (found by its unique temp dir) are ended. Exits with pytest's code.
set -uo pipefail
PY="$1"; shift
before=$(ls -d /tmp/mlcrew-ray-* 2>/dev/null | sort)
"$PY" -m pytest -p no:cacheprovider tests/pipeline/test_ray.py "$@"
rc=$?
after=$(ls -d /tmp/mlcrew-ray-* 2>/dev/null | sort)
left=$(comm -13 <(echo "$before") <(echo "$after") | grep . || true)
if [ "$rc" -ne 0 ] && [ -n "$left" ]; then
    echo "ray-tests: pytest exited $rc; the Ray head's logs follow" >&2
    for root in $left; do
        for f in $(ls "$root"/tmp/session_latest/logs/{raylet.out,raylet.err,gcs_server.out,gcs_server.err,python-core-driver-*.log} 2>/dev/null); do
            echo "----- ${f#"$root"/} (last 40 lines)" >&2
            tail -n 40 "$f" >&2
        done
        dmesg 2>/dev/null | grep -i -E "killed process|out of memory" | tail -5 >&2 || true
    done
fi
for root in $left; do
    # Only the processes of the head this run started: their command lines name its temp dir.
    pkill -TERM -f -- "$root" 2>/dev/null || true
    sleep 2
    pkill -KILL -f -- "$root" 2>/dev/null || true
    rm -rf "$root"
done
exit "$rc"
