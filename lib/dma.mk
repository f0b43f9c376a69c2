# Build of the vhost Tx DMA offload's library files, included by the
# top-level Makefile.am of the assembled Open vSwitch tree.

lib_libopenvswitch_la_SOURCES += \
	lib/deferred-work.c \
	lib/deferred-work.h \
	lib/dpif-netdev-dma.c \
	lib/dpif-netdev-dma.h

if DPDK_NETDEV
lib_libopenvswitch_la_SOURCES += \
	lib/dpdk-dma.c \
	lib/dpdk-dma.h \
	lib/netdev-vhost-dma.c \
	lib/netdev-vhost-dma.h
endif

MAN_FRAGMENTS += lib/dpdk-dma-unixctl.man
EXTRA_DIST += Documentation/topics/dpdk/vhost-dma.rst
