#! /bin/sh
# usage: dma-summary.sh OUTPUT LOG[,LOG...] COMMAND...
#
# Runs COMMAND, which runs autotest testsuites, copying what it prints to
# OUTPUT too, then ends with a line "N passed, N failed" (", N skipped"
# follows when tests were skipped), also written to OUTPUT.summary.  The
# counts come from the LOGs, the testsuites' logs (those that COMMAND
# wrote), which have a line per test whatever the options (-v, -d, -k...)
# made them print.  Exits with 0 only if COMMAND succeeded and no test
# failed.
#
# As root, the system tests can run: a test skipped then counts as failed,
# since a skip would only hide what keeps it from running.

out=$1 logs=$(echo "$2" | tr ',' ' ')
shift 2
rcfile=$out.rc
# Each system test adds "SECONDS NUMBER" to this file as it ends (see
# dma_test_watchdog in tests/dma-macros.at).
times=${out%.out}.times
rm -f $logs "$times"
{ "$@"; echo $? > "$rcfile"; } 2>&1 | tee "$out"
rc=$(cat "$rcfile" 2>/dev/null || echo 1)
rm -f "$rcfile"
written=
for log in $logs; do
    test -f "$log" && written="$written $log"
done

# The log has "N. TITLE (FILE:LINE): RESULT" for each test that ran.
summary=$(awk '
    /^[0-9]+\. .*\): / {
        if ($0 ~ /\): ok( |$)/ \
            || $0 ~ /\): expected failure/) {
            passed++
        } else if ($0 ~ /\): skipped/) {
            skipped++
        } else if ($0 ~ /\): FAILED/ || $0 ~ /\): UNEXPECTED PASS/) {
            failed++
        }
    }
    END { printf "%d %d %d\n", passed, failed, skipped }' $written /dev/null)
if test -z "$written"; then
    # No log (-d, --debug, writes none): the lines the testsuite printed,
    # " N: TITLE   RESULT", then.
    summary=$(awk '
        /^ *[0-9]+: / {
            if ($0 ~ / ok$/ || $0 ~ / ok \(/ || $0 ~ /expected failure/) {
                passed++
            } else if ($0 ~ / skipped \(/) {
                skipped++
            } else if ($0 ~ / FAILED \(/ || $0 ~ /UNEXPECTED PASS/) {
                failed++
            }
        }
        END { printf "%d %d %d\n", passed, failed, skipped }' "$out")
fi
set -- $summary
passed=${1:-0} failed=${2:-0} skipped=${3:-0}
if test "$skipped" != 0 && test "$(id -u)" = 0; then
    echo "$skipped tests were skipped although this machine runs them as root:"
    grep -h '^[0-9]*\. .*): skipped' $written
    failed=$((failed + skipped))
fi
# Where the failures were, last, so that a tail of the output shows them:
# the end of each failed test's own log (for three at most), then a line
# per failed test.
if test "$failed" != 0; then
    failures=$(for log in $written; do
                   grep '^[0-9]*\. .*): \(FAILED\|UNEXPECTED PASS\)' "$log" |
                   sed "s|^|$log |"
               done | head -n 10)
    echo "$failures" | head -n 3 | while read -r log line; do
        # A test's own log is named as the testsuite's, in the directory
        # of the test (its number padded with zeros).
        num=${line%%.*}
        tlog=$(for d in "${log%.log}".dir/*; do
                   test "${d##*/}" -eq "$num" 2>/dev/null && echo "$d"
               done | head -n 1)/${log##*/}
        # The check that failed, and the last lines its test printed.
        where=$(echo "$line" | sed -n 's/.*(\([^()]*:[0-9]*\))$/\1/p')
        if test -f "$tlog"; then
            echo "test $num, around its last $where:"
            # A failed OVS_WAIT_UNTIL fails in ovs-macros.at: the wait
            # that failed says which.
            case $where in
            *-macros.at:*) pattern=": wait failed after" ;;
            *) pattern="$where:" ;;
            esac
            grep -n -F "$pattern" "$tlog" | tail -n 1 | cut -d: -f1 |
            while read -r at; do
                sed -n "$((at > 22 ? at - 22 : 1)),$((at + 8))p" "$tlog"
            done | cut -c1-200 | sed 's/^/    /'
            # A test that ran over its time (dma_test_watchdog in
            # tests/dma-macros.at): where its processes were.
            if test -f "${tlog%/*}/watchdog.log"; then
                echo "test $num ran over its time:"
                head -n 40 "${tlog%/*}/watchdog.log" | cut -c1-200 |
                sed 's/^/    /'
            fi
        fi
    done
    echo "$failures" | while read -r log line; do
        test -n "$line" && echo "failed: $line"
    done
fi
# Where the time went: this machine's CPUs may be shared, and a slow run
# should say which tests it spent its time in.
if test -s "$times"; then
    sort -rn "$times" | awk '
        { total += $1 }
        NR <= 6 { top = top sprintf(" %s (%d s)", $2, $1) }
        END { printf "system tests: %d s in all; the longest:%s\n",
                     total, top }'
fi
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
