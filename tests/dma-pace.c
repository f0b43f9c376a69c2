/*
 * Copyright (c) 2026 The ovs-vhost-dma authors.
 *
 * Licensed under the Apache License, Version 2.0 (the "License"); see
 * LICENSE.
 */

/* dma-pace: sends Ethernet frames on a network interface at a fixed rate.
 *
 * usage: dma-pace IFACE SIZE RATE [SECONDS]
 *
 * Sends UDP-in-IPv4 frames of SIZE bytes (without FCS) on IFACE through an
 * AF_PACKET socket, RATE frames per second, for SECONDS seconds or until
 * SIGTERM or SIGINT, then prints "sent N frames, E errors in S s" on
 * stdout.
 *
 * It is the benchmark's pacer (utilities/ovs-dma-bench): the far end of a
 * veth pair whose near end a net_af_packet port of ovs-vswitchd receives
 * from.  The PMD thread then polls a source that offers exactly the load
 * asked for, instead of a saturating source whose excess an ingress policer
 * drops in the PMD thread itself.  It wakes up every TICK_NS, sends the
 * frames due by then in batches of sendmmsg(), and sleeps again
 * (clock_nanosleep() to an absolute time, so the rate does not drift with
 * the time the sends take).  The qdisc is bypassed (PACKET_QDISC_BYPASS):
 * a frame the veth cannot take is an error, not a silent drop. */

#include <config.h>
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* How often the pacer wakes up: at 50 kpps, 5 frames per wake-up. */
#define TICK_NS 100000

/* Frames per sendmmsg() call. */
#define BATCH 64

#define MIN_SIZE 60
#define MAX_SIZE 9018

static volatile sig_atomic_t stop;

static void
on_signal(int signo)
{
    (void) signo;
    stop = 1;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint16_t
ip_csum(const uint8_t *p, size_t n)
{
    uint32_t sum = 0;

    for (size_t i = 0; i + 1 < n; i += 2) {
        sum += (p[i] << 8) | p[i + 1];
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return ~sum & 0xffff;
}

/* Fills 'frame' with a UDP-in-IPv4 frame of 'size' bytes, from
 * 02:00:00:00:00:01 to 02:00:00:00:00:02, 10.0.0.1:1024 to
 * 10.0.0.2:1024, whose payload is a byte pattern. */
static void
build_frame(uint8_t *frame, size_t size)
{
    static const uint8_t dst[6] = { 2, 0, 0, 0, 0, 2 };
    static const uint8_t src[6] = { 2, 0, 0, 0, 0, 1 };
    uint8_t *ip = frame + 14;
    uint8_t *udp = ip + 20;
    size_t ip_len = size - 14;
    size_t udp_len = ip_len - 20;

    memcpy(frame, dst, 6);
    memcpy(frame + 6, src, 6);
    frame[12] = 0x08;
    frame[13] = 0x00;

    memset(ip, 0, 20);
    ip[0] = 0x45;
    ip[2] = ip_len >> 8;
    ip[3] = ip_len & 0xff;
    ip[8] = 64;
    ip[9] = 17;
    ip[12] = 10; ip[15] = 1;
    ip[16] = 10; ip[19] = 2;
    uint16_t csum = ip_csum(ip, 20);
    ip[10] = csum >> 8;
    ip[11] = csum & 0xff;

    udp[0] = 0x04; udp[1] = 0x00;
    udp[2] = 0x04; udp[3] = 0x00;
    udp[4] = udp_len >> 8;
    udp[5] = udp_len & 0xff;
    udp[6] = udp[7] = 0;        /* No UDP checksum. */
    for (size_t i = 8; i < udp_len; i++) {
        udp[i] = i & 0xff;
    }
}

static int
open_socket(const char *iface)
{
    struct sockaddr_ll sll;
    int one = 1;
    int fd;

    fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) {
        perror("dma-pace: socket");
        return -1;
    }
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = 0;       /* Send only. */
    sll.sll_ifindex = if_nametoindex(iface);
    if (!sll.sll_ifindex) {
        fprintf(stderr, "dma-pace: %s: no such interface\n", iface);
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *) &sll, sizeof sll) < 0) {
        perror("dma-pace: bind");
        close(fd);
        return -1;
    }
    if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one,
                   sizeof one) < 0) {
        perror("dma-pace: PACKET_QDISC_BYPASS");
    }
    return fd;
}

int
main(int argc, char *argv[])
{
    static uint8_t frame[MAX_SIZE];
    struct mmsghdr msgs[BATCH];
    struct iovec iov;
    uint64_t sent = 0, errors = 0;
    uint64_t start, next, end;
    double rate, seconds = 0;
    long size;
    int fd;

    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s IFACE SIZE RATE [SECONDS]\n", argv[0]);
        return 2;
    }
    size = strtol(argv[2], NULL, 10);
    rate = strtod(argv[3], NULL);
    if (argc == 5) {
        seconds = strtod(argv[4], NULL);
    }
    if (size < MIN_SIZE || size > MAX_SIZE || !(rate > 0)
        || seconds < 0) {
        fprintf(stderr, "dma-pace: SIZE must be within %d..%d, RATE > 0, "
                "SECONDS >= 0\n", MIN_SIZE, MAX_SIZE);
        return 2;
    }

    fd = open_socket(argv[1]);
    if (fd < 0) {
        return 1;
    }
    build_frame(frame, size);
    iov.iov_base = frame;
    iov.iov_len = size;
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        msgs[i].msg_hdr.msg_iov = &iov;
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    start = now_ns();
    end = seconds ? start + (uint64_t) (seconds * 1e9) : UINT64_MAX;
    next = start;
    while (!stop) {
        uint64_t now = now_ns();
        uint64_t due;

        if (now >= end) {
            now = end;
        }
        due = (uint64_t) ((now - start) * (rate / 1e9));
        while (sent + errors < due && !stop) {
            uint64_t n = due - sent - errors;
            int r = sendmmsg(fd, msgs, n < BATCH ? n : BATCH, 0);

            if (r > 0) {
                sent += r;
            } else if (r < 0 && errno != EINTR) {
                /* The frame that failed is counted, so that a veth that
                 * refuses does not make the pacer spin. */
                if (!errors) {
                    fprintf(stderr, "dma-pace: sendmmsg: %s\n",
                            strerror(errno));
                }
                errors++;
            }
        }
        if (now >= end) {
            break;
        }

        struct timespec ts;

        next += TICK_NS;
        if (next < now) {
            next = now;
        }
        ts.tv_sec = next / 1000000000;
        ts.tv_nsec = next % 1000000000;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
    printf("sent %"PRIu64" frames, %"PRIu64" errors in %.3f s\n",
           sent, errors, (now_ns() - start) / 1e9);
    close(fd);
    return 0;
}
