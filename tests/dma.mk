# The vhost Tx DMA offload's test suite, included by the top-level
# Makefile.am of the assembled Open vSwitch tree.
#
# 'make check-dma' runs it and ends with a line "N passed, N failed" (and
# ", N skipped" when tests were skipped).  TESTSUITEFLAGS passes options to
# the testsuite as usual, e.g. TESTSUITEFLAGS='-k vhost -v'.

DMA_TESTSUITE_AT = \
	tests/dma-testsuite.at \
	tests/dma-macros.at \
	tests/dma-unit.at \
	tests/dma-system-vhost.at \
	tests/dma-system-devices.at \
	tests/dma-system-dma.at
DMA_TESTSUITE = $(srcdir)/tests/dma-testsuite

EXTRA_DIST += $(DMA_TESTSUITE_AT) $(DMA_TESTSUITE) \
	tests/dma-pcap.py tests/dma-summary.sh

tests_ovstest_SOURCES += tests/test-deferred-work.c

$(DMA_TESTSUITE): package.m4 $(DMA_TESTSUITE_AT) $(COMMON_MACROS_AT) \
		tests/system-dpdk-macros.at
	$(AM_V_GEN)$(AUTOTEST) -I '$(srcdir)' -o $@.tmp $@.at
	$(AM_V_at)mv $@.tmp $@

check-dma: all $(DMA_TESTSUITE) tests/atconfig tests/atlocal
	@$(SHELL) '$(srcdir)/tests/dma-summary.sh' tests/dma-testsuite.out \
	    $(SHELL) '$(DMA_TESTSUITE)' -C tests \
	    AUTOTEST_PATH='$(AUTOTEST_PATH)' -j1 $(TESTSUITEFLAGS)
.PHONY: check-dma
