#! /usr/bin/env python3
# Copyright (c) 2026 The ovs-vhost-dma authors.
#
# Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE.
"""A minimal vhost-user front-end (the "guest" side) for the system tests.

It negotiates like an old QEMU (no VHOST_USER_PROTOCOL_F_STATUS), sets up
split virtqueues in a memfd that it shares with the back-end, and receives
what the back-end transmits into the guest's Rx virtqueues.  Between two
looks at the rings it sleeps, so it costs little CPU, unlike a polling
dpdk-testpmd guest.  It transmits only with --tx-tso: then it offers one
TCP/IPv4 frame of that size, with a virtio-net header asking the back-end
to segment it (GSO), on the Tx virtqueue of queue pair 0, over and over.

    vhost-user-guest.py (--client PATH | --server PATH) [options]

    --client PATH       connect to the socket that a 'dpdkvhostuser' port
                        listens on
    --server PATH       listen on PATH for a 'dpdkvhostuserclient' port with
                        options:vhost-server-path=PATH
    --queues N          queue pairs set up at start (default 1)
    --late-queues M     queue pairs set up once the back-end started the
                        device, --late-delay seconds (default 1.0) after
                        queue pair 0 was enabled
    --late-announce     send the late queue pairs' sizes (SET_VRING_NUM)
                        before the first queue pair is ready, so that vhost
                        counts them when it starts the device, though they
                        become ready only later
    --early-mem-table   with --late-queues: lay out the late queue pairs
                        (left disabled) and send a new memory table (a
                        region added) before the first queue pair is set
                        up, so that vhost notifies every vring as disabled,
                        then enabled, before it starts the device
    --enable-delay S    seconds between the enables of a queue pair's Rx
                        and Tx virtqueues (default 0): the back-end sees
                        the Rx one enabled well before the device is
                        ready (vhost calls new_device once both are)
    --queue-size N      entries of each virtqueue (default 256)
    --buf-size B        size of each receive buffer (default 2048)
    --mem-mb MB         size of guest memory (default 64)
    --pcap OUT.pcap     write the frames received to OUT.pcap (linktype 1,
                        flushed after each batch)
    --cmd PATH          read commands, one per line, from PATH: a FIFO,
                        created if it does not exist, or a regular file that
                        is followed like 'tail -f'
    --script CMDS       run the commands CMDS, separated by ';', in order
    --timeout S         seconds to wait for each reply (default 20: a
                        loaded machine may hold up a vhost thread for
                        seconds, a hung one holds it up for good)
    --poll-ms MS        milliseconds between two looks at the rings
                        (default 1)
    --interrupts        ask the back-end to interrupt (signal the call
                        eventfd of) each Rx virtqueue when it uses
                        buffers, look at the rings when it does, and count
                        the interrupts (default: VRING_AVAIL_F_NO_INTERRUPT)
    --connect-timeout S seconds to wait for the connection (default 30)
    --no-reconnect      exit with status 3 when the back-end disconnects
                        (default: connect again and set up the rings anew)
    --tx-tso SIZE       transmit a TCP/IPv4 frame of SIZE bytes (60 to
                        65549, Ethernet header included) with a GSO
                        virtio-net header (VIRTIO_NET_HDR_GSO_TCPV4, MSS
                        1448): negotiates VIRTIO_NET_F_CSUM and
                        VIRTIO_NET_F_HOST_TSO4, which Open vSwitch offers
                        with other_config:userspace-tso-enable=true
    --tx-rate PPS       frames per second to transmit (default 1000; 0:
                        as many as the ring takes)
    --tx-count N        stop transmitting after N frames (default: never)
    --tx-frame OUT.pcap write the frame that --tx-tso sends to OUT.pcap

Queue pair Q is made of the guest's Rx virtqueue 2*Q, into which the
back-end transmits, and of its Tx virtqueue 2*Q+1, which stays empty but
with --tx-tso for queue pair 0.  Every Tx descriptor points to the same
buffer, the header and the frame, which the back-end only reads.

Every message without a reply of its own asks for a REPLY_ACK.  Commands,
from --cmd and --script, run once all queue pairs of --queues and
--late-queues are set up; each is answered by "ok: COMMAND" or by
"error: COMMAND: WHY" on stdout:

    enable Q, disable Q  SET_VRING_ENABLE 1 or 0 for virtqueue Q
    setup QP             set up and enable queue pair QP (also one that
                         was stopped)
    mem-table            send SET_MEM_TABLE again with another table: a
                         second memory region is added, or removed by the
                         next 'mem-table'; the rings stay where they are
    stats                print the counters of each queue pair
    tx-rate PPS          transmit PPS frames per second from now on
    stop-queue QP        GET_VRING_BASE for the Rx virtqueue of QP, like QEMU
                         stopping the device
    sleep S              delay the next commands by S seconds (the rings
                         are still serviced meanwhile)
    quit                 close the connection and exit with status 0 (a
                         'quit' from --cmd also ends a wait for the
                         connection)

Progress is reported on stdout, one line per event: "listening on PATH",
"connected", "ready: N queue pairs", "late queue pair Q enabled",
"disconnected: WHY", and on exit (also on SIGTERM, after the pcap is
flushed) "rx queue Q: N packets, B bytes" for each queue pair, counting
every connection, "rx queue Q: N interrupts" with --interrupts, and
"tx queue 0: N packets, B bytes" with --tx-tso
(frames the back-end took).  Frames are counted without their virtio-net
header.

Exit status: 0 after 'quit' or SIGTERM; 1 for bad usage or a local error;
2 when the back-end does not reply within --timeout (a hung vhost thread:
"error: no reply to SET_VRING_ENABLE within 20 s (virtqueue 2)"), refuses
a message of the set-up or breaks the protocol; 3 when there is no
connection within --connect-timeout, or the back-end disconnects (also
before a reply) with --no-reconnect.

Example, for a 'dpdkvhostuserclient' port:

    vhost-user-guest.py --server vhu0.sock --pcap rx.pcap --cmd vhu0.cmd \\
        > guest.log &
    echo mem-table > vhu0.cmd; echo stats > vhu0.cmd; echo quit > vhu0.cmd
"""

import argparse
import ctypes
import errno
import mmap
import os
import select
import signal
import socket
import stat
import struct
import sys
import time

# Requests (front-end to back-end).
GET_FEATURES = 1
SET_FEATURES = 2
SET_OWNER = 3
SET_MEM_TABLE = 5
SET_VRING_NUM = 8
SET_VRING_ADDR = 9
SET_VRING_BASE = 10
GET_VRING_BASE = 11
SET_VRING_KICK = 12
SET_VRING_CALL = 13
GET_PROTOCOL_FEATURES = 15
SET_PROTOCOL_FEATURES = 16
GET_QUEUE_NUM = 17
SET_VRING_ENABLE = 18

REQUEST_NAMES = {
    GET_FEATURES: 'GET_FEATURES',
    SET_FEATURES: 'SET_FEATURES',
    SET_OWNER: 'SET_OWNER',
    SET_MEM_TABLE: 'SET_MEM_TABLE',
    SET_VRING_NUM: 'SET_VRING_NUM',
    SET_VRING_ADDR: 'SET_VRING_ADDR',
    SET_VRING_BASE: 'SET_VRING_BASE',
    GET_VRING_BASE: 'GET_VRING_BASE',
    SET_VRING_KICK: 'SET_VRING_KICK',
    SET_VRING_CALL: 'SET_VRING_CALL',
    GET_PROTOCOL_FEATURES: 'GET_PROTOCOL_FEATURES',
    SET_PROTOCOL_FEATURES: 'SET_PROTOCOL_FEATURES',
    GET_QUEUE_NUM: 'GET_QUEUE_NUM',
    SET_VRING_ENABLE: 'SET_VRING_ENABLE',
}

# Message header: request, flags, payload size.
HEADER = struct.Struct('<III')
FLAG_VERSION = 0x1
FLAG_VERSION_MASK = 0x3
FLAG_REPLY = 0x1 << 2
FLAG_NEED_REPLY = 0x1 << 3

# Device features (virtio and vhost-user).
F_CSUM = 0
F_HOST_TSO4 = 11
F_MRG_RXBUF = 15
F_PROTOCOL_FEATURES = 30
F_VERSION_1 = 32
WANTED_FEATURES = (1 << F_VERSION_1) | (1 << F_MRG_RXBUF) \
    | (1 << F_PROTOCOL_FEATURES)
TSO_FEATURES = (1 << F_CSUM) | (1 << F_HOST_TSO4)
FEATURE_NAMES = {
    F_CSUM: 'VIRTIO_NET_F_CSUM',
    F_HOST_TSO4: 'VIRTIO_NET_F_HOST_TSO4',
    F_MRG_RXBUF: 'VIRTIO_NET_F_MRG_RXBUF',
    F_PROTOCOL_FEATURES: 'VHOST_USER_F_PROTOCOL_FEATURES',
    F_VERSION_1: 'VIRTIO_F_VERSION_1',
}

# Protocol features.
PROTOCOL_F_MQ = 0
PROTOCOL_F_REPLY_ACK = 3
WANTED_PROTOCOL_FEATURES = (1 << PROTOCOL_F_MQ) | (1 << PROTOCOL_F_REPLY_ACK)

# Split virtqueue layout.
DESC = struct.Struct('<QIHH')        # addr, len, flags, next
USED_ELEM = struct.Struct('<II')     # id, len
U16 = struct.Struct('<H')


def load_u16(mem, offset):
    """Reads the 16-bit ring index at 'offset' of 'mem' in one load.  The
    back-end updates it concurrently: struct.unpack_from() reads it a byte
    at a time and can see half of an update."""
    return ctypes.c_uint16.from_buffer(mem, offset).value


def store_u16(mem, offset, value):
    """Writes the 16-bit ring index at 'offset' of 'mem' in one store.
    struct.pack_into() writes it a byte at a time, low byte first: a
    back-end that reads it in between sees an index that went backwards,
    takes descriptors that were never made available, and loses track of
    the ring (DPDK's vhost stops only when its index equals ours)."""
    ctypes.c_uint16.from_buffer(mem, offset).value = value
VRING_DESC_F_WRITE = 2
VRING_AVAIL_F_NO_INTERRUPT = 1
VRING_USED_F_NO_NOTIFY = 1

# The virtio-net header of VIRTIO_F_VERSION_1 devices, whose last field,
# num_buffers, tells how many buffers a received packet spans.
VNET_HDR_LEN = 12
VNET_NUM_BUFFERS_OFS = 10
# flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers.
VNET_HDR = struct.Struct('<BBHHHHH')
VNET_HDR_F_NEEDS_CSUM = 1
VNET_HDR_GSO_TCPV4 = 1
TSO_MSS = 1448
ETH_IP_TCP_LEN = 14 + 20 + 20

# The second memory region that 'mem-table' adds and removes, far above the
# first one in guest physical address space.
EXTRA_REGION_GPA = 0x100000000
EXTRA_REGION_SIZE = 2 * 1024 * 1024

PCAP_HEADER = struct.Struct('<IHHiIII')
PCAP_RECORD = struct.Struct('<IIII')

# Exit statuses.
EXIT_OK = 0
EXIT_LOCAL = 1
EXIT_PROTOCOL = 2
EXIT_CONNECT = 3


def log(line):
    """Prints 'line' on stdout at once, for tests that follow the output."""
    print(line, flush=True)


class LocalError(Exception):
    """A problem on this side: bad arguments, not enough guest memory."""


class ProtocolError(Exception):
    """The back-end did not reply in time, refused a set-up message or
    broke the protocol: the tool cannot go on."""


class Disconnected(Exception):
    """The back-end closed the connection."""


class ConnectError(Exception):
    """No connection could be made."""


class CommandError(Exception):
    """A command failed; the tool goes on."""


class Terminated(Exception):
    """SIGTERM or SIGINT arrived."""


class Region:
    """A memfd shared with the back-end, mapped into this process."""

    def __init__(self, name, size, gpa):
        self.size = size
        self.gpa = gpa
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.mem = mmap.mmap(self.fd, size, mmap.MAP_SHARED,
                             mmap.PROT_READ | mmap.PROT_WRITE)
        # The address of the mapping is the region's "userspace address":
        # the back-end translates the ring addresses through it.  The ctypes
        # object pins the mapping, which this tool never closes anyway.
        self._pin = ctypes.c_char.from_buffer(self.mem)
        self.uaddr = ctypes.addressof(self._pin)

    def table_entry(self):
        """Returns the region's entry of a SET_MEM_TABLE message."""
        return struct.pack('<QQQQ', self.gpa, self.size, self.uaddr, 0)


class GuestMemory:
    """Guest memory: region 0 at guest physical address 0 holds every ring
    and buffer; an optional extra region only changes the table."""

    def __init__(self, size):
        self.main = Region('vhost-user-guest', size, 0)
        self.extra = None
        self.with_extra = False
        self.next_free = 0

    @property
    def mem(self):
        return self.main.mem

    def reset(self):
        """Forgets every allocation, for a new connection."""
        self.next_free = 0
        self.with_extra = False

    def alloc(self, size, align=4096):
        """Returns the offset (= guest physical address) of 'size' bytes of
        zeroed memory."""
        start = (self.next_free + align - 1) // align * align
        if start + size > self.main.size:
            raise LocalError('guest memory is too small (%d MiB): use a '
                             'larger --mem-mb' % (self.main.size >> 20))
        self.mem[start:start + size] = bytes(size)
        self.next_free = start + size
        return start

    def regions(self):
        """Returns the regions of the current memory table."""
        if self.with_extra:
            if self.extra is None:
                self.extra = Region('vhost-user-guest-extra',
                                    EXTRA_REGION_SIZE, EXTRA_REGION_GPA)
            return [self.main, self.extra]
        return [self.main]

    def uaddr(self, offset):
        """Returns the "userspace address" of 'offset' in region 0."""
        return self.main.uaddr + offset


class Vring:
    """One split virtqueue in guest memory.  An Rx virtqueue has a buffer
    per descriptor, all of them offered to the back-end; a Tx virtqueue
    offers nothing."""

    def __init__(self, memory, index, size, buf_size, tx_packet=None,
                 wants_interrupts=False):
        self.memory = memory
        self.wants_interrupts = wants_interrupts
        self.index = index
        self.size = size
        self.is_rx = index % 2 == 0
        self.buf_size = buf_size
        self.desc = memory.alloc(DESC.size * size, 4096)
        self.avail = memory.alloc(4 + 2 * size + 2, 2)
        self.used = memory.alloc(4 + USED_ELEM.size * size + 2, 4096)
        self.buffers = (memory.alloc(buf_size * size, 4096)
                        if self.is_rx else None)
        # A Tx virtqueue that transmits: one buffer, header and frame,
        # that every descriptor points to.
        self.tx_packet = tx_packet
        if tx_packet is not None:
            self.tx_buffer = memory.alloc(len(tx_packet), 4096)
        self.kick = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self.call = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self.enabled = False
        self.stopped = False
        self.reset()

    def reset(self):
        """Puts the rings in their initial state: nothing used yet and, in
        an Rx virtqueue, every buffer available."""
        mem = self.memory.mem
        mem[self.desc:self.desc + DESC.size * self.size] = \
            bytes(DESC.size * self.size)
        mem[self.used:self.used + 4 + USED_ELEM.size * self.size + 2] = \
            bytes(4 + USED_ELEM.size * self.size + 2)
        self.last_used = 0
        self.avail_idx = 0
        # Unless asked to, the back-end need not interrupt us: we look at
        # the used ring anyway.
        U16.pack_into(mem, self.avail,
                      0 if self.wants_interrupts
                      else VRING_AVAIL_F_NO_INTERRUPT)
        if self.is_rx:
            for i in range(self.size):
                DESC.pack_into(mem, self.desc + DESC.size * i,
                               self.buffers + self.buf_size * i,
                               self.buf_size, VRING_DESC_F_WRITE, 0)
                U16.pack_into(mem, self.avail + 4 + 2 * i, i)
            self.avail_idx = self.size
        elif self.tx_packet is not None:
            n = len(self.tx_packet)
            mem[self.tx_buffer:self.tx_buffer + n] = self.tx_packet
            for i in range(self.size):
                DESC.pack_into(mem, self.desc + DESC.size * i,
                               self.tx_buffer, n, 0, 0)
        store_u16(mem, self.avail + 2, self.avail_idx)
        self.tx_offered = 0
        self.packets = 0
        self.bytes = 0
        self.errors = 0
        self.stopped = False
        self.enabled = False

    def close(self):
        os.close(self.kick)
        os.close(self.call)

    def take_interrupts(self):
        """Returns the number of times the back-end signalled the call
        eventfd since the last call, and resets it."""
        try:
            return os.eventfd_read(self.call)
        except BlockingIOError:
            return 0

    def addr_payload(self):
        """Returns the payload of SET_VRING_ADDR."""
        m = self.memory
        return struct.pack('<IIQQQQ', self.index, 0, m.uaddr(self.desc),
                           m.uaddr(self.used), m.uaddr(self.avail), 0)

    def _buffer(self, desc_id, length):
        """Returns the first 'length' bytes of the buffer of descriptor
        'desc_id', or None if the back-end returned nonsense."""
        if desc_id >= self.size or length > self.buf_size:
            return None
        start = self.buffers + self.buf_size * desc_id
        return self.memory.mem[start:start + length]

    def receive(self):
        """Takes the packets that the back-end put in the used ring, gives
        their buffers back in the avail ring and returns their frames
        (without virtio-net header)."""
        mem = self.memory.mem
        used_idx = load_u16(mem, self.used + 2)
        pending = (used_idx - self.last_used) & 0xffff
        frames = []
        recycled = []
        while pending:
            slot = self.used + 4 + USED_ELEM.size * (self.last_used
                                                     % self.size)
            desc_id, length = USED_ELEM.unpack_from(mem, slot)
            first = self._buffer(desc_id, length)
            if first is None or length < VNET_HDR_LEN:
                # Give the buffer back alone, if it is one of ours.
                self.errors += 1
                if desc_id < self.size:
                    recycled.append(desc_id)
                self.last_used = (self.last_used + 1) & 0xffff
                pending -= 1
                continue
            n_bufs = U16.unpack_from(first, VNET_NUM_BUFFERS_OFS)[0]
            if n_bufs == 0 or n_bufs > self.size:
                self.errors += 1
                n_bufs = 1
            if n_bufs > pending:
                # The rest of this packet is not in the used ring yet.
                break
            parts = [first[VNET_HDR_LEN:]]
            ids = [desc_id]
            for k in range(1, n_bufs):
                slot = self.used + 4 + USED_ELEM.size * (
                    (self.last_used + k) % self.size)
                desc_id, length = USED_ELEM.unpack_from(mem, slot)
                part = self._buffer(desc_id, length)
                if part is None:
                    self.errors += 1
                    part = b''
                else:
                    ids.append(desc_id)
                parts.append(part)
            frame = b''.join(parts)
            frames.append(frame)
            self.packets += 1
            self.bytes += len(frame)
            recycled.extend(ids)
            self.last_used = (self.last_used + n_bufs) & 0xffff
            pending -= n_bufs
        if recycled:
            self._make_available(recycled)
        return frames

    def transmit(self, budget):
        """Counts the frames that the back-end took from this Tx virtqueue
        and offers up to 'budget' more, as many as the ring has room for.
        Returns the number offered."""
        mem = self.memory.mem
        used_idx = load_u16(mem, self.used + 2)
        done = (used_idx - self.last_used) & 0xffff
        self.last_used = used_idx
        self.tx_offered -= done
        self.packets += done
        self.bytes += done * (len(self.tx_packet) - VNET_HDR_LEN)
        n = min(budget, self.size - self.tx_offered)
        if n > 0:
            self._make_available([(self.avail_idx + k) % self.size
                                  for k in range(n)])
            self.tx_offered += n
        return max(n, 0)

    def _make_available(self, ids):
        """Puts descriptors 'ids' back in the avail ring.  On x86 the
        stores reach memory in program order, so the back-end sees the
        entries before the new index."""
        mem = self.memory.mem
        for desc_id in ids:
            U16.pack_into(mem, self.avail + 4 + 2 * (self.avail_idx
                                                     % self.size), desc_id)
            self.avail_idx = (self.avail_idx + 1) & 0xffff
        store_u16(mem, self.avail + 2, self.avail_idx)
        used_flags = load_u16(mem, self.used)
        if not used_flags & VRING_USED_F_NO_NOTIFY:
            os.eventfd_write(self.kick, 1)


class Pcap:
    """A classic pcap file (Ethernet) that grows as frames arrive."""

    def __init__(self, path):
        self.file = open(path, 'wb')
        self.file.write(PCAP_HEADER.pack(0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        self.file.flush()

    def write(self, frames):
        now = time.time()
        sec, usec = int(now), int((now % 1) * 1e6)
        for frame in frames:
            self.file.write(PCAP_RECORD.pack(sec, usec, len(frame),
                                             len(frame)))
            self.file.write(frame)
        self.file.flush()

    def close(self):
        self.file.close()


def ip_checksum(header):
    """Returns the Internet checksum of 'header' (even length)."""
    total = sum(struct.unpack('!%dH' % (len(header) // 2), header))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff


def tso_frame(size):
    """Returns a TCP/IPv4 frame of 'size' bytes (Ethernet header included)
    from 10.0.0.1:5001 to 10.0.0.2:5001, whose payload is a byte pattern,
    and the virtio-net header that asks the back-end to segment it into
    TSO_MSS-byte segments and to complete its TCP checksum.  That checksum
    holds the sum of the pseudo-header without the TCP length: what DPDK's
    vhost writes there when it hands a TSO packet to a guest
    (rte_net_intel_cksum_prepare() in virtio_enqueue_offload()), so that
    the frame a guest receives is byte for byte the frame sent."""
    ip_len = size - 14
    payload_len = ip_len - 40
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, ip_len, 1, 0x4000, 64, 6, 0,
                     src, dst)
    ip = ip[:10] + struct.pack('!H', ip_checksum(ip)) + ip[12:]
    pseudo = ip_checksum(src + dst + struct.pack('!BBH', 0, 6, 0))
    tcp = struct.pack('!HHIIBBHHH', 5001, 5001, 1, 0, 5 << 4, 0x18, 65535,
                      ~pseudo & 0xffff, 0)
    eth = bytes.fromhex('020000000002' '020000000001' '0800')
    payload = bytes(i & 0xff for i in range(payload_len))
    frame = eth + ip + tcp + payload
    hdr = VNET_HDR.pack(VNET_HDR_F_NEEDS_CSUM, VNET_HDR_GSO_TCPV4,
                        ETH_IP_TCP_LEN, TSO_MSS, 14 + 20, 16, 0)
    return hdr, frame


def describe(request, payload):
    """Names a message for errors: "SET_VRING_ENABLE (virtqueue 2)"."""
    name = REQUEST_NAMES.get(request, 'request %d' % request)
    if request in (SET_VRING_KICK, SET_VRING_CALL):
        index = struct.unpack_from('<Q', payload)[0] & 0xff
    elif SET_VRING_NUM <= request <= GET_VRING_BASE \
            or request == SET_VRING_ENABLE:
        index = struct.unpack_from('<I', payload)[0]
    else:
        return name
    return '%s (virtqueue %d)' % (name, index)


class Channel:
    """The vhost-user connection: messages and their replies."""

    def __init__(self, sock, timeout, terminated):
        self.sock = sock
        self.timeout = timeout
        self.terminated = terminated
        self.reply_ack = False
        self.sent = ''

    def close(self):
        self.sock.close()

    def send(self, request, payload=b'', fds=(), need_reply=False):
        """Sends a message; the errors about its reply name it."""
        self.sent = describe(request, payload)
        flags = FLAG_VERSION | (FLAG_NEED_REPLY if need_reply else 0)
        data = HEADER.pack(request, flags, len(payload)) + payload
        try:
            if fds:
                socket.send_fds(self.sock, [data], list(fds))
            else:
                self.sock.sendall(data)
        except OSError as e:
            raise Disconnected('cannot send %s: %s' % (self.sent, e.strerror))

    def _error(self, what):
        """Returns a ProtocolError about the reply to the last message:
        "no reply to SET_VRING_ENABLE within 20 s (virtqueue 2)"."""
        name, _, detail = self.sent.partition(' ')
        return ProtocolError(' '.join(filter(None, [what % name, detail])))

    def _recv_exact(self, n, deadline):
        """Reads 'n' bytes of the reply to the last message before
        'deadline'."""
        data = b''
        while len(data) < n:
            if self.terminated():
                raise Terminated()
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._error('no reply to %%s within %g s'
                                  % self.timeout)
            # Short waits, so that SIGTERM is noticed quickly.
            ready, _, _ = select.select([self.sock], [], [], min(left, 0.1))
            if not ready:
                continue
            try:
                chunk = self.sock.recv(n - len(data))
            except OSError as e:
                # A back-end that goes away is not a back-end that hangs.
                raise Disconnected('connection failed waiting for the reply '
                                   'to %s: %s' % (self.sent, e.strerror))
            if not chunk:
                raise Disconnected('connection closed by the back-end '
                                   'before the reply to %s' % self.sent)
            data += chunk
        return data

    def _recv_reply(self, request, size):
        """Receives the reply to the last message, 'request', whose payload
        has 'size' bytes, and returns that payload."""
        deadline = time.monotonic() + self.timeout
        header = self._recv_exact(HEADER.size, deadline)
        req, flags, length = HEADER.unpack(header)
        payload = self._recv_exact(length, deadline) if length else b''
        if req != request or not flags & FLAG_REPLY \
           or flags & FLAG_VERSION_MASK != FLAG_VERSION:
            raise self._error('bad reply to %%s: request %d, flags %#x'
                              % (req, flags))
        if length != size:
            raise self._error('bad reply to %%s: %d bytes instead of %d'
                              % (length, size))
        return payload

    def get_u64(self, request, payload=b''):
        """Sends 'request', which has a u64 reply, and returns the reply."""
        self.send(request, payload)
        return struct.unpack('<Q', self._recv_reply(request, 8))[0]

    def get_state(self, request, index):
        """Sends 'request' for virtqueue 'index', which has a vring state
        reply, and returns the number of that reply."""
        self.send(request, struct.pack('<II', index, 0))
        got_index, num = struct.unpack('<II',
                                       self._recv_reply(request, 8))
        if got_index != index:
            raise self._error('bad reply to %%s: virtqueue %d' % got_index)
        return num

    def call(self, request, payload=b'', fds=()):
        """Sends 'request', which has no reply of its own, and waits for
        its REPLY_ACK once that was negotiated.  Returns False if the
        back-end refused the message."""
        self.send(request, payload, fds, need_reply=self.reply_ack)
        if not self.reply_ack:
            return True
        return struct.unpack('<Q', self._recv_reply(request, 8))[0] == 0

    def must(self, request, payload=b'', fds=()):
        """Like call(), for a message that must succeed."""
        if not self.call(request, payload, fds):
            raise self._error('back-end refused %s')

    def poll_idle(self):
        """Checks the connection while no reply is expected: raises
        Disconnected if the back-end closed it."""
        try:
            data = self.sock.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError as e:
            raise Disconnected(e.strerror)
        if not data:
            raise Disconnected('back-end closed the connection')
        log('warning: ignored %d unexpected bytes from the back-end'
            % len(data))


class Commands:
    """Commands from --script and --cmd, run in order, each not before its
    predecessors' 'sleep' ended."""

    def __init__(self, script, cmd_path):
        self.pending = [c.strip() for c in (script or '').split(';')
                        if c.strip()]
        self.not_before = 0.0
        self.fd = None
        self.is_fifo = False
        self.created = None
        self.partial = b''
        self.quit_read = False
        if cmd_path:
            self._open(cmd_path)

    def _open(self, path):
        if not os.path.exists(path):
            os.mkfifo(path, 0o600)
            self.created = path
        if stat.S_ISFIFO(os.stat(path).st_mode):
            # Opened for writing too, so that it never reports EOF when a
            # writer goes away.
            self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
            self.is_fifo = True
        else:
            self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
        if self.created:
            try:
                os.unlink(self.created)
            except OSError:
                pass

    def wait_fds(self):
        """Returns the file descriptors worth waiting on."""
        return [self.fd] if self.is_fifo else []

    def read(self):
        """Adds the complete lines that arrived to the pending commands."""
        if self.fd is None:
            return
        while True:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                break
            if not data:
                break
            self.partial += data
        *lines, self.partial = self.partial.split(b'\n')
        for line in lines:
            line = line.decode('utf-8', 'replace').strip()
            if line and not line.startswith('#'):
                self.pending.append(line)
                self.quit_read |= line == 'quit'

    def next(self):
        """Returns the next command due now, or None."""
        if self.pending and time.monotonic() >= self.not_before:
            return self.pending.pop(0)
        return None


class Guest:
    """The front-end: connection, negotiation, queue pairs, main loop."""

    def __init__(self, args):
        self.args = args
        self.memory = GuestMemory(args.mem_mb << 20)
        self.pcap = Pcap(args.pcap) if args.pcap else None
        self.commands = Commands(args.script, args.cmd)
        self.listener = None
        self.channel = None
        self.vrings = {}
        self.counters = {}
        self.interrupts = {}
        self.tx_counters = [0, 0, 0]
        self.max_queue_pairs = 0
        self.late_at = None
        self.late_done = False
        self.term = False
        self.tx_packet = None
        if args.tx_tso:
            hdr, frame = tso_frame(args.tx_tso)
            self.tx_packet = hdr + frame
            if args.tx_frame:
                pcap = Pcap(args.tx_frame)
                pcap.write([frame])
                pcap.close()
        self.tx_rate = args.tx_rate
        self.tx_credit = 0.0
        self.tx_last = time.monotonic()
        self.tx_total = 0

    # Connection.

    def terminated(self):
        return self.term

    def _wait(self, sock, deadline):
        """Waits until 'sock' (if not None) is readable or 'deadline'
        passes, noticing SIGTERM and a 'quit' command.  Returns True if
        readable."""
        while True:
            if self.term:
                raise Terminated()
            # A 'quit' from --cmd need not wait for a connection.
            self.commands.read()
            if self.commands.quit_read:
                log('ok: quit')
                raise Terminated()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            rlist = [sock] if sock is not None else []
            ready, _, _ = select.select(rlist, [], [], min(left, 0.1))
            if ready:
                return True

    def connect(self):
        """Makes the vhost-user connection, as client or as server."""
        a = self.args
        deadline = time.monotonic() + a.connect_timeout
        if a.server:
            if self.listener is None:
                if os.path.exists(a.server) \
                   and stat.S_ISSOCK(os.stat(a.server).st_mode):
                    os.unlink(a.server)
                self.listener = socket.socket(socket.AF_UNIX,
                                              socket.SOCK_STREAM)
                self.listener.bind(a.server)
                self.listener.listen(1)
                log('listening on %s' % a.server)
            if not self._wait(self.listener, deadline):
                raise ConnectError('no connection on %s within %g s'
                                   % (a.server, a.connect_timeout))
            sock, _ = self.listener.accept()
        else:
            while True:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(a.client)
                    break
                except OSError as e:
                    sock.close()
                    if e.errno not in (errno.ENOENT, errno.ECONNREFUSED):
                        raise ConnectError('cannot connect to %s: %s'
                                           % (a.client, e.strerror))
                    if time.monotonic() >= deadline:
                        raise ConnectError('cannot connect to %s within '
                                           '%g s: %s' % (a.client,
                                                         a.connect_timeout,
                                                         e.strerror))
                # The socket does not exist yet or nobody listens.
                self._wait(None, time.monotonic() + 0.2)
        sock.setblocking(True)
        self.channel = Channel(sock, a.timeout, self.terminated)
        log('connected')

    # Negotiation and set-up.

    def negotiate(self):
        """Feature negotiation, like QEMU does it when it starts."""
        ch = self.channel
        ch.reply_ack = False
        features = ch.get_u64(GET_FEATURES)
        acked = WANTED_FEATURES | (TSO_FEATURES if self.args.tx_tso else 0)
        for bit, name in sorted(FEATURE_NAMES.items()):
            if acked & (1 << bit) and not features & (1 << bit):
                raise ProtocolError('back-end lacks feature %s (features '
                                    '%#x)' % (name, features))
        protocol = ch.get_u64(GET_PROTOCOL_FEATURES)
        if protocol & WANTED_PROTOCOL_FEATURES != WANTED_PROTOCOL_FEATURES:
            raise ProtocolError('back-end lacks protocol feature MQ or '
                                'REPLY_ACK (protocol features %#x)'
                                % protocol)
        # REPLY_ACK applies to the messages after this one; GET_QUEUE_NUM
        # then shows that the back-end took it.
        ch.send(SET_PROTOCOL_FEATURES,
                struct.pack('<Q', WANTED_PROTOCOL_FEATURES))
        ch.reply_ack = True
        self.max_queue_pairs = ch.get_u64(GET_QUEUE_NUM)
        wanted = self.args.queues + self.args.late_queues
        if wanted > self.max_queue_pairs:
            raise ProtocolError('back-end supports %d queue pairs, %d '
                                'wanted' % (self.max_queue_pairs, wanted))
        ch.must(SET_OWNER)
        ch.must(SET_FEATURES, struct.pack('<Q', acked))
        self.memory.reset()
        if not self.send_mem_table():
            raise ProtocolError('back-end refused SET_MEM_TABLE')

    def send_mem_table(self):
        """Sends the current memory table; returns False if refused."""
        regions = self.memory.regions()
        payload = struct.pack('<II', len(regions), 0) \
            + b''.join(r.table_entry() for r in regions)
        return self.channel.call(SET_MEM_TABLE, payload,
                                 [r.fd for r in regions])

    def configure_vring(self, index):
        """Lays out virtqueue 'index' (anew) and tells the back-end where it
        is; it stays disabled."""
        vr = self.vrings.get(index)
        if vr is None:
            vr = Vring(self.memory, index, self.args.queue_size,
                       self.args.buf_size,
                       self.tx_packet if index == 1 else None,
                       self.args.interrupts and index % 2 == 0)
            self.vrings[index] = vr
        else:
            vr.reset()
        ch = self.channel
        ch.must(SET_VRING_NUM, struct.pack('<II', index, vr.size))
        ch.must(SET_VRING_BASE, struct.pack('<II', index, 0))
        ch.must(SET_VRING_ADDR, vr.addr_payload())
        ch.must(SET_VRING_KICK, struct.pack('<Q', index), [vr.kick])
        ch.must(SET_VRING_CALL, struct.pack('<Q', index), [vr.call])

    def enable_vring(self, index, enable):
        """SET_VRING_ENABLE; returns False if the back-end refused it."""
        ok = self.channel.call(SET_VRING_ENABLE,
                               struct.pack('<II', index, int(enable)))
        if ok and index in self.vrings:
            self.vrings[index].enabled = enable
        return ok

    def setup_queue_pairs(self, qps):
        """Sets up queue pairs 'qps': every virtqueue first, then every
        enable, like QEMU starting a device."""
        for qp in qps:
            self.counters.setdefault(qp, [0, 0, 0])
            self.configure_vring(2 * qp)
            self.configure_vring(2 * qp + 1)
        for qp in qps:
            for index in (2 * qp, 2 * qp + 1):
                if index % 2 and self.args.enable_delay:
                    time.sleep(self.args.enable_delay)
                if not self.enable_vring(index, True):
                    raise ProtocolError('back-end refused SET_VRING_ENABLE '
                                        '(virtqueue %d)' % index)

    def setup(self):
        """Everything from the connection to the initial queue pairs."""
        self.vrings_close()
        self.negotiate()
        if self.args.early_mem_table:
            first = self.args.queues
            for index in range(2 * first,
                               2 * (first + self.args.late_queues)):
                self.configure_vring(index)
            self.memory.with_extra = True
            if not self.send_mem_table():
                raise ProtocolError('back-end refused SET_MEM_TABLE')
        elif self.args.late_announce:
            first = self.args.queues
            for index in range(2 * first,
                               2 * (first + self.args.late_queues)):
                self.channel.must(SET_VRING_NUM, struct.pack(
                    '<II', index, self.args.queue_size))
        self.setup_queue_pairs(range(self.args.queues))
        log('ready: %d queue pairs' % self.args.queues)
        if self.args.late_queues:
            self.late_at = time.monotonic() + self.args.late_delay
            self.late_done = False
        else:
            self.late_done = True

    def setup_late(self):
        """Sets up the late queue pairs, once the device is started."""
        first = self.args.queues
        for qp in range(first, first + self.args.late_queues):
            self.setup_queue_pairs([qp])
            log('late queue pair %d enabled' % qp)
        self.late_done = True

    def vrings_close(self):
        """Forgets the virtqueues of a previous connection (keeping their
        counters)."""
        self.take_interrupts()
        for vr in self.vrings.values():
            self._save_counters(vr)
            vr.close()
        self.vrings = {}

    def _save_counters(self, vr):
        if vr.is_rx:
            c = self.counters.setdefault(vr.index // 2, [0, 0, 0])
        elif vr.tx_packet is not None:
            c = self.tx_counters
        else:
            return
        c[0] += vr.packets
        c[1] += vr.bytes
        c[2] += vr.errors
        vr.packets = vr.bytes = vr.errors = 0

    # Transmitting.

    def transmit(self):
        """Offers the frames of --tx-tso that --tx-rate allows since the
        last call (all the ring takes with rate 0), up to --tx-count."""
        vr = self.vrings.get(1)
        if vr is None or vr.tx_packet is None or not vr.enabled:
            return
        now = time.monotonic()
        if self.tx_rate:
            # At most 2 ms worth of credit (and at least a frame): after a
            # pause, no burst that a receiver could not take.
            self.tx_credit = min(self.tx_credit
                                 + (now - self.tx_last) * self.tx_rate,
                                 max(1.0, self.tx_rate / 500), vr.size)
        else:
            self.tx_credit = vr.size
        self.tx_last = now
        budget = int(self.tx_credit)
        if self.args.tx_count is not None:
            budget = min(budget, self.args.tx_count - self.tx_total)
        n = vr.transmit(budget)
        self.tx_credit -= n
        self.tx_total += n

    # Receiving.

    def receive(self):
        """Empties every Rx used ring once."""
        frames = []
        for index in sorted(self.vrings):
            vr = self.vrings[index]
            if vr.is_rx:
                frames.extend(vr.receive())
        if frames and self.pcap:
            self.pcap.write(frames)

    def take_interrupts(self):
        """Adds up the interrupts of the Rx virtqueues (--interrupts)."""
        for index, vr in self.vrings.items():
            if vr.wants_interrupts:
                qp = index // 2
                self.interrupts[qp] = (self.interrupts.get(qp, 0)
                                       + vr.take_interrupts())

    def stats_lines(self):
        lines = []
        self.take_interrupts()
        for qp in sorted(self.counters):
            packets, nbytes, errors = self.counters[qp]
            vr = self.vrings.get(2 * qp)
            if vr:
                packets += vr.packets
                nbytes += vr.bytes
                errors += vr.errors
            lines.append('rx queue %d: %d packets, %d bytes'
                         % (qp, packets, nbytes))
            if self.args.interrupts:
                lines.append('rx queue %d: %d interrupts'
                             % (qp, self.interrupts.get(qp, 0)))
            if errors:
                lines.append('rx queue %d: %d malformed used entries'
                             % (qp, errors))
        if self.tx_packet is not None:
            packets, nbytes, _ = self.tx_counters
            vr = self.vrings.get(1)
            if vr:
                packets += vr.packets
                nbytes += vr.bytes
            lines.append('tx queue 0: %d packets, %d bytes'
                         % (packets, nbytes))
        return lines

    # Commands.

    def _number(self, words, limit, what):
        if len(words) != 2 or not words[1].isdigit():
            raise CommandError('expects one %s' % what)
        n = int(words[1])
        if n >= limit:
            raise CommandError('%s %d out of range (back-end supports %d)'
                               % (what, n, limit))
        return n

    def run_command(self, command):
        """Runs 'command'; returns False for 'quit'."""
        words = command.split()
        verb = words[0]
        try:
            if verb == 'quit':
                log('ok: %s' % command)
                return False
            elif verb in ('enable', 'disable'):
                q = self._number(words, 2 * self.max_queue_pairs,
                                 'virtqueue')
                if not self.enable_vring(q, verb == 'enable'):
                    raise CommandError('back-end refused SET_VRING_ENABLE')
            elif verb == 'setup':
                qp = self._number(words, self.max_queue_pairs, 'queue pair')
                rx = self.vrings.get(2 * qp)
                if rx and not rx.stopped:
                    raise CommandError('queue pair %d is set up already'
                                       % qp)
                if rx:
                    self._save_counters(rx)
                self.setup_queue_pairs([qp])
            elif verb == 'mem-table':
                if len(words) != 1:
                    raise CommandError('expects no argument')
                self.memory.with_extra = not self.memory.with_extra
                n = len(self.memory.regions())
                if not self.send_mem_table():
                    # The back-end keeps the table it had.
                    self.memory.with_extra = not self.memory.with_extra
                    raise CommandError('back-end refused SET_MEM_TABLE '
                                       'with %d regions' % n)
                log('memory table: %d region%s' % (n, 's' if n > 1 else ''))
            elif verb == 'stats':
                if len(words) != 1:
                    raise CommandError('expects no argument')
                for line in self.stats_lines():
                    log(line)
            elif verb == 'stop-queue':
                qp = self._number(words, self.max_queue_pairs, 'queue pair')
                rx = self.vrings.get(2 * qp)
                if not rx:
                    raise CommandError('queue pair %d is not set up' % qp)
                base = self.channel.get_state(GET_VRING_BASE, 2 * qp)
                rx.stopped = True
                rx.enabled = False
                log('virtqueue %d stopped at %d' % (2 * qp, base))
            elif verb == 'tx-rate':
                if len(words) != 2 or not words[1].isdigit():
                    raise CommandError('expects a number of frames per '
                                       'second')
                self.tx_rate = int(words[1])
            elif verb == 'sleep':
                try:
                    seconds = float(words[1]) if len(words) == 2 else -1
                except ValueError:
                    seconds = -1
                if seconds < 0:
                    raise CommandError('expects a number of seconds')
                self.commands.not_before = time.monotonic() + seconds
            else:
                raise CommandError('unknown command')
        except CommandError as e:
            log('error: %s: %s' % (command, e))
            return True
        log('ok: %s' % command)
        return True

    # Main loop.

    def serve(self):
        """Services the rings and runs the commands until 'quit'.  Returns
        normally on 'quit'; raises Disconnected if the back-end went
        away."""
        poll = self.args.poll_ms / 1000.0
        while True:
            if self.term:
                raise Terminated()
            rlist = [self.channel.sock] + self.commands.wait_fds()
            rlist += [vr.call for vr in self.vrings.values()
                      if vr.wants_interrupts]
            ready, _, _ = select.select(rlist, [], [], poll)
            self.take_interrupts()
            if self.channel.sock in ready:
                self.channel.poll_idle()
            self.receive()
            self.transmit()
            if not self.late_done and time.monotonic() >= self.late_at:
                self.setup_late()
            self.commands.read()
            while self.late_done:
                command = self.commands.next()
                if command is None:
                    break
                if not self.run_command(command):
                    return

    def run(self):
        """Connects, sets up and serves, again after each disconnection
        (unless --no-reconnect).  Returns the exit status."""
        try:
            while True:
                self.connect()
                try:
                    self.setup()
                    self.serve()
                    return EXIT_OK
                except Disconnected as e:
                    log('disconnected: %s' % e)
                    self.channel.close()
                    self.channel = None
                    if self.args.no_reconnect:
                        return EXIT_CONNECT
        except Terminated:
            return EXIT_OK
        except ProtocolError as e:
            log('error: %s' % e)
            return EXIT_PROTOCOL
        except ConnectError as e:
            log('error: %s' % e)
            return EXIT_CONNECT
        except LocalError as e:
            log('error: %s' % e)
            return EXIT_LOCAL

    def finish(self):
        """Flushes the pcap, prints the final counters, closes
        everything."""
        self.receive_safely()
        if self.pcap:
            self.pcap.close()
        for line in self.stats_lines():
            log(line)
        if self.channel:
            self.channel.close()
        if self.listener:
            self.listener.close()
            try:
                os.unlink(self.args.server)
            except OSError:
                pass
        self.commands.close()

    def receive_safely(self):
        """Takes what is still in the used rings, if the rings are
        sane."""
        try:
            self.receive()
        except (struct.error, ValueError, OSError):
            pass


class ArgumentParser(argparse.ArgumentParser):
    """Exits with status 1 on bad usage: 2 means a back-end failure."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_LOCAL, '%s: error: %s\n' % (self.prog, message))


def parse_args(argv):
    parser = ArgumentParser(
        description='Minimal vhost-user front-end (guest) for tests.')
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument('--client', metavar='PATH',
                       help='connect to the back-end listening on PATH')
    where.add_argument('--server', metavar='PATH',
                       help='listen on PATH for the back-end')
    parser.add_argument('--queues', type=int, default=1, metavar='N')
    parser.add_argument('--late-queues', type=int, default=0, metavar='M')
    parser.add_argument('--late-announce', action='store_true')
    parser.add_argument('--early-mem-table', action='store_true')
    parser.add_argument('--late-delay', type=float, default=1.0,
                        metavar='SECONDS')
    parser.add_argument('--enable-delay', type=float, default=0,
                        metavar='SECONDS')
    parser.add_argument('--queue-size', type=int, default=256, metavar='N')
    parser.add_argument('--buf-size', type=int, default=2048, metavar='B')
    parser.add_argument('--mem-mb', type=int, default=64, metavar='MB')
    parser.add_argument('--pcap', metavar='OUT.pcap')
    parser.add_argument('--cmd', metavar='PATH')
    parser.add_argument('--script', metavar='CMDS')
    parser.add_argument('--timeout', type=float, default=20.0,
                        metavar='SECONDS')
    parser.add_argument('--poll-ms', type=float, default=1.0, metavar='MS')
    parser.add_argument('--interrupts', action='store_true')
    parser.add_argument('--connect-timeout', type=float, default=30.0,
                        metavar='SECONDS')
    parser.add_argument('--no-reconnect', action='store_true')
    parser.add_argument('--tx-tso', type=int, metavar='SIZE')
    parser.add_argument('--tx-rate', type=int, default=1000, metavar='PPS')
    parser.add_argument('--tx-count', type=int, metavar='N')
    parser.add_argument('--tx-frame', metavar='OUT.pcap')
    args = parser.parse_args(argv)
    if args.tx_tso is not None and not 60 <= args.tx_tso <= 65549:
        parser.error('--tx-tso must be between 60 and 65549')
    if args.tx_rate < 0 or (args.tx_count is not None
                            and args.tx_count < 0):
        parser.error('--tx-rate and --tx-count must not be negative')
    if args.queues < 1 or args.late_queues < 0:
        parser.error('--queues must be at least 1, --late-queues at '
                     'least 0')
    size = args.queue_size
    if size < 1 or size > 32768 or size & (size - 1):
        parser.error('--queue-size must be a power of 2 up to 32768')
    if args.buf_size < 64 or args.buf_size > 65535:
        parser.error('--buf-size must be between 64 and 65535')
    if args.mem_mb < 1:
        parser.error('--mem-mb must be at least 1')
    if args.poll_ms <= 0:
        parser.error('--poll-ms must be positive')
    return args


def main(argv):
    args = parse_args(argv)
    try:
        guest = Guest(args)
    except OSError as e:
        log('error: %s' % e)
        return EXIT_LOCAL

    def on_signal(signum, frame):
        guest.term = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        status = guest.run()
    finally:
        guest.finish()
    return status


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
