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
	tests/dma-system-dma.at \
	tests/dma-system-lifecycle.at \
	tests/dma-system-overflow.at \
	tests/dma-soak.at \
	tests/dma-system-harness.at
DMA_TESTSUITE = $(srcdir)/tests/dma-testsuite

EXTRA_DIST += $(DMA_TESTSUITE_AT) $(DMA_TESTSUITE) \
	tests/dma-pcap.py tests/dma-summary.sh tests/dma-soak.sh \
	tests/dma-freeze-thread.py tests/vhost-user-guest.py

tests_ovstest_SOURCES += tests/test-deferred-work.c tests/test-pmd-dma.c \
	tests/test-dpdk-dma.c

# The benchmark's pacer (utilities/ovs-dma-bench --pacer veth).
noinst_PROGRAMS += tests/dma-pace
tests_dma_pace_SOURCES = tests/dma-pace.c

$(DMA_TESTSUITE): package.m4 $(DMA_TESTSUITE_AT) $(COMMON_MACROS_AT) \
		tests/system-dpdk-macros.at
	$(AM_V_GEN)$(AUTOTEST) -I '$(srcdir)' -o $@.tmp $@.at
	$(AM_V_at)mv $@.tmp $@

# Open vSwitch's own tests that cover what upstream/ patches: dpif-netdev
# (PMD threads, reloads, sleep, netdev-dummy) and the pmd keyword; they
# run, counted in the closing line, when no TESTSUITEFLAGS select tests of
# ours.
DMA_UPSTREAM_TESTSUITEFLAGS = -j2 -k dpif-netdev -k pmd

check-dma: all $(DMA_TESTSUITE) $(TESTSUITE) tests/atconfig tests/atlocal
	@rm -f tests/testsuite.log
	@$(SHELL) '$(srcdir)/tests/dma-summary.sh' tests/dma-testsuite.out \
	    tests/dma-testsuite.log,tests/testsuite.log \
	    $(SHELL) -c '\
	    $(SHELL) "$(DMA_TESTSUITE)" -C tests \
	        AUTOTEST_PATH="$(AUTOTEST_PATH)" -j1 $(TESTSUITEFLAGS); \
	    rc=$$?; \
	    if test -z "$(TESTSUITEFLAGS)"; then \
	        echo "Open vSwitch tests of what upstream/ patches:"; \
	        $(SHELL) "$(TESTSUITE)" -C tests \
	            AUTOTEST_PATH="$(AUTOTEST_PATH)" \
	            $(DMA_UPSTREAM_TESTSUITEFLAGS) || rc=1; \
	    fi; \
	    exit $$rc'
.PHONY: check-dma

# The fault campaign alone, with the full counts: see tests/dma-soak.sh.
# SOAKFLAGS=--quick runs what the whole suite runs.
check-soak: all $(DMA_TESTSUITE) tests/atconfig tests/atlocal
	@AUTOTEST_PATH="$(AUTOTEST_PATH)" \
	    $(SHELL) '$(srcdir)/tests/dma-soak.sh' $(SOAKFLAGS)
.PHONY: check-soak
