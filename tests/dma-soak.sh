#! /bin/sh
# The fault campaign of the vhost Tx DMA offload ("make check-soak").
#
# usage: dma-soak.sh [--quick | --counts] [SECONDS]
#
# Runs the "soak" test of the DMA testsuite (tests/dma-soak.at): faults
# one after another, with traffic flowing and tx-dma on, for at most
# SECONDS (default 780: with its setup and final checks, the run takes
# less than 15 minutes), towards the full counts of each fault, shared out
# among the phases.  --counts runs until every fault reached its full
# count (at most 3 hours; about half an hour on the 2-core development
# machine).  --quick runs for 75 seconds instead, as many cycles as fit,
# as the whole suite does.  Prints the campaign's table, then "N passed,
# N failed".
#
# Run from the assembled Open vSwitch tree (the Makefile does), as root.

quick=false
seconds=780
for arg; do
    case $arg in
        --quick) quick=true seconds=75 ;;
        --counts) quick=false seconds=10800 ;;
        [0-9]*) seconds=$arg ;;
        *) echo "usage: $0 [--quick | --counts] [SECONDS]" >&2; exit 2 ;;
    esac
done

DMA_SOAK_SECONDS=$seconds
export DMA_SOAK_SECONDS
if $quick; then
    unset DMA_SOAK_FULL
else
    DMA_SOAK_FULL=1
    export DMA_SOAK_FULL
fi

rm -f tests/dma-soak-table.txt
sh "$(dirname "$0")/dma-summary.sh" tests/dma-soak.out \
    tests/dma-testsuite.log sh tests/dma-testsuite -C tests -k soak -j1 \
        AUTOTEST_PATH="$AUTOTEST_PATH"
rc=$?
if test -f tests/dma-soak-table.txt; then
    echo "The campaign ($seconds s of faults):"
    cat tests/dma-soak-table.txt
fi
tail -n 1 tests/dma-soak.out.summary
exit $rc
