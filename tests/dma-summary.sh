#! /bin/sh
# usage: dma-summary.sh OUTPUT COMMAND...
#
# Runs the autotest COMMAND, copying what it prints to OUTPUT too, then ends
# with a line "N passed, N failed" (", N skipped" follows when tests were
# skipped), also written to OUTPUT.summary.  Exits with 0 only if the
# testsuite succeeded and no test failed.

out=$1
shift
rcfile=$out.rc
{ "$@"; echo $? > "$rcfile"; } 2>&1 | tee "$out"
rc=$(cat "$rcfile" 2>/dev/null || echo 1)
rm -f "$rcfile"

# Autotest prints one line per test: "  N: TITLE   RESULT".
summary=$(awk '
    /^ *[0-9]+: / {
        if ($0 ~ / ok$/ || $0 ~ /expected failure/ && $0 !~ /UNEXPECTED/) {
            passed++
        } else if ($0 ~ /skipped \(/) {
            skipped++
        } else if ($0 ~ /FAILED \(/ || $0 ~ /UNEXPECTED PASS/) {
            failed++
        }
    }
    END { printf "%d %d %d\n", passed, failed, skipped }' "$out")
set -- $summary
passed=$1 failed=$2 skipped=$3
if test "$rc" != 0 && test "$failed" = 0; then
    echo "the testsuite exited with status $rc without reporting a failed test"
    failed=1
fi
if test "$skipped" != 0; then
    line="$passed passed, $failed failed, $skipped skipped"
else
    line="$passed passed, $failed failed"
fi
echo "$line" | tee "$out.summary"
test "$failed" = 0
