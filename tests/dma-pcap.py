#! /usr/bin/env python3
# Copyright (c) 2026 The ovs-vhost-dma authors.
#
# Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE.
"""Traffic for the vhost DMA offload tests.

    dma-pcap.py gen OUT.pcap --sizes SPEC [--count N] [--seed S] [--src IP]
        Writes N UDP/IPv4 frames from IP (10.0.0.1) to 10.0.0.2 whose lengths
        cycle through SPEC, a comma-separated list of lengths and LO-HI
        ranges (a range yields every length in it, then wraps).  Each
        frame carries its index and a pseudo-random payload, so reordering,
        loss, duplication or corruption is visible.
    dma-pcap.py empty OUT.pcap
        Writes a pcap with no packets (an rx_pcap for net_pcap).
    dma-pcap.py send IFACE IN.pcap [--pps N] [--burst B] [--loop] [--report]
        Sends every frame of IN.pcap out of IFACE (AF_PACKET), paced at N
        frames per second, B frames back to back at a time (default 1);
        with --loop, again and again until it is killed.  With --report,
        prints "sent N frames" once the last is out, before it closes the
        socket (which may block: see dma_pid_alive in dma-macros.at).  If the
        environment variable DMA_SENDER_CPUS is set (a comma-separated list
        of CPU numbers), the sender runs on those CPUs only: the test suite
        keeps it off the PMD thread's core, whose Rx it would otherwise
        delay enough for the net_pcap source to lose frames in the kernel.
    dma-pcap.py compare SENT.pcap RECEIVED.pcap
        Succeeds if RECEIVED holds exactly the frames of SENT, byte for byte
        and in the same order; otherwise says where they first differ.
    dma-pcap.py count FILE.pcap
        Prints the number of frames in FILE.pcap.
    dma-pcap.py bytes FILE.pcap
        Prints the number of bytes of the frames in FILE.pcap.
    dma-pcap.py hex FILE.pcap
        Prints each frame of FILE.pcap in hex, one per line (for
        'ovs-ofctl packet-out').
    dma-pcap.py capture IFACE COUNT [--timeout S]
        Receives the frames that arrive on IFACE (AF_PACKET) until COUNT
        have, or for at most S seconds (default 10) after the first; prints
        "ready" once it listens, then "frames N distinct D length L
        ipv4-checksum ok|bad span S": how many arrived, how many
        different ones, the length of the first, whether its IPv4 header
        checksum holds, and the seconds between the first and the last.
        (A check of tests/dma-pace, the benchmark's pacer.)
    dma-pcap.py split IN.pcap IP MATCH.pcap REST.pcap
        Writes the frames of IN.pcap from IPv4 source IP to MATCH.pcap and
        the others to REST.pcap, keeping their order.
"""

import argparse
import os
import random
import socket
import struct
import sys
import time

PCAP_MAGIC = 0xa1b2c3d4
PCAP_MAGIC_NS = 0xa1b23c4d


def write_pcap(path, frames):
    with open(path, 'wb') as f:
        f.write(struct.pack('<IHHiIII', PCAP_MAGIC, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            f.write(struct.pack('<IIII', i // 1000, (i % 1000) * 1000,
                                len(frame), len(frame)))
            f.write(frame)


def read_pcap(path):
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError('%s: not a pcap file (%d bytes)' % (path, len(data)))
    magic = struct.unpack('<I', data[:4])[0]
    if magic in (PCAP_MAGIC, PCAP_MAGIC_NS):
        endian = '<'
    elif struct.unpack('>I', data[:4])[0] in (PCAP_MAGIC, PCAP_MAGIC_NS):
        endian = '>'
    else:
        raise ValueError('%s: bad pcap magic %#x' % (path, magic))
    frames = []
    off = 24
    while off < len(data):
        if off + 16 > len(data):
            raise ValueError('%s: truncated record header' % path)
        _, _, caplen, wirelen = struct.unpack(endian + 'IIII',
                                              data[off:off + 16])
        off += 16
        if caplen != wirelen:
            raise ValueError('%s: frame %d truncated (%d of %d bytes)'
                             % (path, len(frames), caplen, wirelen))
        frames.append(data[off:off + caplen])
        off += caplen
    return frames


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def make_frame(index, length, rng, src='10.0.0.1'):
    eth = (bytes.fromhex('020000000002') + bytes.fromhex('020000000001')
           + struct.pack('!H', 0x0800))
    payload_len = length - len(eth) - 20 - 8
    if payload_len < 4:
        raise ValueError('frame length %d is too short' % length)
    payload = struct.pack('!I', index) + rng.randbytes(payload_len - 4)
    udp = struct.pack('!HHHH', 4000 + index % 1000, 5000, 8 + payload_len, 0)
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + 8 + payload_len,
                     index & 0xffff, 0, 64, 17, 0,
                     socket.inet_aton(src),
                     socket.inet_aton('10.0.0.2'))
    ip = ip[:10] + struct.pack('!H', checksum(ip)) + ip[12:]
    return eth + ip + udp + payload


def parse_sizes(spec):
    sizes = []
    for part in spec.split(','):
        if '-' in part:
            lo, hi = (int(x) for x in part.split('-'))
            sizes.extend(range(lo, hi + 1))
        else:
            sizes.append(int(part))
    return sizes


def cmd_gen(args):
    sizes = parse_sizes(args.sizes)
    count = args.count or len(sizes)
    rng = random.Random(args.seed)
    write_pcap(args.out, [make_frame(i, sizes[i % len(sizes)], rng,
                                     args.src)
                          for i in range(count)])


def cmd_empty(args):
    write_pcap(args.out, [])


# How late (seconds) the sender may fall behind its schedule and catch up.
CATCH_UP = 0.002


def cmd_send(args):
    cpus = os.environ.get('DMA_SENDER_CPUS')
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(',')})
    frames = read_pcap(args.pcap)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((args.iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    start = time.monotonic()
    i = 0
    while True:
        for frame in frames:
            due = start + (i - i % args.burst) / args.pps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -CATCH_UP:
                # Descheduled for a while (the guest busy-polls the same
                # core): go on at the rate from now on instead of sending
                # the backlog at once, a burst that the receiving
                # net_pcap port's kernel buffer might not hold.
                start -= delay
            s.send(frame)
            i += 1
        if not args.loop:
            break
    if args.report:
        print('sent %d frames' % i, flush=True)
    s.close()


def compare_subsequence(sent, received, allowed):
    """Checks that 'received' is 'sent' with at most 'allowed' frames left
    out: every frame byte-exact and in the order sent."""
    j = 0
    for i, frame in enumerate(received):
        while j < len(sent) and sent[j] != frame:
            j += 1
        if j == len(sent):
            print('received frame %d was not sent, or out of order' % i)
            return 1
        j += 1
    missing = len(sent) - len(received)
    if missing > allowed:
        print('sent %d frames, received %d: %d missing, at most %d allowed'
              % (len(sent), len(received), missing, allowed))
        return 1
    print('%d of %d frames received, identical and in order'
          % (len(received), len(sent)))
    return 0


def cmd_compare(args):
    sent = read_pcap(args.sent)
    received = read_pcap(args.received)
    if args.unordered:
        # Frames of several guest queues interleave as the guest happened
        # to poll them: put them back in the order of the index that 'gen'
        # wrote into each, then check them as a subsequence (a frame
        # received twice or changed fails).
        received.sort(key=lambda frame: frame[42:46])
        return compare_subsequence(sent, received, args.allow_missing)
    if args.allow_missing:
        return compare_subsequence(sent, received, args.allow_missing)
    for i, (a, b) in enumerate(zip(sent, received)):
        if a != b:
            diff = next((j for j in range(min(len(a), len(b)))
                         if a[j] != b[j]), min(len(a), len(b)))
            print('frame %d differs: sent %d bytes, received %d bytes, '
                  'first difference at byte %d' % (i, len(a), len(b), diff))
            if len(b) >= 46:
                print('received frame %d carries index %d'
                      % (i, struct.unpack('!I', b[42:46])[0]))
            return 1
    if len(sent) != len(received):
        print('sent %d frames, received %d' % (len(sent), len(received)))
        return 1
    print('%d frames, %d bytes, identical and in order'
          % (len(sent), sum(len(f) for f in sent)))
    return 0


def cmd_count(args):
    print(len(read_pcap(args.pcap)))


def cmd_bytes(args):
    print(sum(len(frame) for frame in read_pcap(args.pcap)))


def cmd_hex(args):
    for frame in read_pcap(args.pcap):
        print(frame.hex())


def cmd_capture(args):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                      socket.htons(0x0003))     # ETH_P_ALL
    s.bind((args.iface, 0))
    print('ready', flush=True)
    frames = []
    first = last = None
    while len(frames) < args.count:
        if first is not None:
            left = first + args.timeout - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            break
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        last = time.monotonic()
        if first is None:
            first = last
        frames.append(frame)
    length = len(frames[0]) if frames else 0
    csum = 'bad'
    if length >= 34 and frames[0][12:14] == b'\x08\x00':
        csum = 'ok' if checksum(frames[0][14:34]) == 0 else 'bad'
    print('frames %d distinct %d length %d ipv4-checksum %s span %.3f'
          % (len(frames), len(set(frames)), length, csum,
             (last - first) if frames else 0))


def cmd_split(args):
    src = socket.inet_aton(args.ip)
    frames = read_pcap(args.pcap)
    match = [f for f in frames if len(f) >= 34 and f[12:14] == b'\x08\x00'
             and f[26:30] == src]
    rest = [f for f in frames if f not in match]
    write_pcap(args.match, match)
    write_pcap(args.rest, rest)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('gen')
    p.add_argument('out')
    p.add_argument('--sizes', required=True)
    p.add_argument('--count', type=int, default=0)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--src', default='10.0.0.1')
    p.set_defaults(func=cmd_gen)
    p = sub.add_parser('empty')
    p.add_argument('out')
    p.set_defaults(func=cmd_empty)
    p = sub.add_parser('send')
    p.add_argument('iface')
    p.add_argument('pcap')
    p.add_argument('--pps', type=float, default=20000)
    p.add_argument('--burst', type=int, default=1)
    p.add_argument('--loop', action='store_true',
                   help='send the frames again and again until killed')
    p.add_argument('--report', action='store_true',
                   help='say when the last frame is out')
    p.set_defaults(func=cmd_send)
    p = sub.add_parser('compare')
    p.add_argument('sent')
    p.add_argument('received')
    p.add_argument('--allow-missing', type=int, default=0,
                   help='frames that may be missing (lost before OVS)')
    p.add_argument('--unordered', action='store_true',
                   help='the frames may arrive in any order (several '
                   'guest queues); each once and intact')
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser('hex')
    p.add_argument('pcap')
    p.set_defaults(func=cmd_hex)
    p = sub.add_parser('capture')
    p.add_argument('iface')
    p.add_argument('count', type=int)
    p.add_argument('--timeout', type=float, default=10)
    p.set_defaults(func=cmd_capture)
    p = sub.add_parser('split')
    p.add_argument('pcap')
    p.add_argument('ip')
    p.add_argument('match')
    p.add_argument('rest')
    p.set_defaults(func=cmd_split)
    p = sub.add_parser('count')
    p.add_argument('pcap')
    p.set_defaults(func=cmd_count)
    p = sub.add_parser('bytes')
    p.add_argument('pcap')
    p.set_defaults(func=cmd_bytes)
    args = parser.parse_args()
    return args.func(args) or 0


if __name__ == '__main__':
    sys.exit(main())
