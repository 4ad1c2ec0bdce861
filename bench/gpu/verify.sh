#!/bin/bash
# On a GPU machine (device tool, carry [".gpu"] from bench/gpu/bundle.sh): every correctness check of the
# CUDA side in one call, about six minutes on an H100: the native harness's kernel checks, the Java tests
# that reach CUDA (java-tests.sh, the fuzz test at FUZZ_CASES cases), compute-sanitizer's four tools
# (sanitizer.sh) and a soak of SOAK_SECONDS (stress.sh). A table of verdicts last; the logs in
# $OUT/verify-logs.tgz (the device tool brings back at most 8 files).
# Exit status 1 if any part failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ -x .gpu/jre/bin/java ] || { echo "no .gpu/ bundle: run bench/gpu/bundle.sh on the build machine and carry .gpu" >&2; exit 2; }
out=${OUT:-/tmp}
source bench/gpu/native-build.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
rows=() status=0

part() { # name, seconds, command...: runs it under a limit, records its verdict and time
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    timeout -k 5 "$limit" "$@" > "$out/verify-$name.log" 2>&1
    local rc=$?
    [ $rc = 0 ] || status=1
    rows+=("| $name | $([ $rc = 0 ] && echo passed || echo "FAILED ($rc)") | $((SECONDS - start)) | $(summary "$name") |")
}

summary() { # one line of a part's log that says what it found
    local log="$out/verify-$1.log"
    case $1 in
        java-tests|fuzz) echo "classes: $(grep -cE '^\| [^|]+ \| passed' "$log") passed," \
            "$(grep -cE '^\| [^|]+ \| (FAILED|TIMED OUT)' "$log") not" ;;
        sanitizer) echo "runs clean: $(grep -cE '^\| [^|]+ \| clean' "$log") of 5" ;;
        stress) grep '^stress:' "$log" | tail -1 ;;
        *) tail -1 "$log" ;;
    esac | cut -c1-120
}

part harness 120 "$build/mmfuse_harness" --checks-only
part java-tests 240 bash bench/gpu/java-tests.sh 90
JAVA_TOOL_OPTIONS="-Dmmfuse.fuzz.cases=${FUZZ_CASES:-20000}" part fuzz 120 bash bench/gpu/java-tests.sh 110 FuzzTest
part sanitizer 300 bash bench/gpu/sanitizer.sh
part stress $((${SOAK_SECONDS:-40} + 40)) bash bench/gpu/stress.sh "${SOAK_SECONDS:-40}"

grep -v "^|" "$out/verify-harness.log" | tail -5
grep -E "FAILED|TIMED OUT" "$out/verify-java-tests.log" "$out/verify-fuzz.log" || true
tail -7 "$out/verify-sanitizer.log"
echo
echo "| part | verdict | seconds | found |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ -n "${OUT:-}" ]; then
    (cd "$OUT" && tar czf verify-logs.tgz --remove-files --exclude verify-logs.tgz -- *.log)
fi
exit $status
