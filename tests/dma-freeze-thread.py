#! /usr/bin/env python3
# Copyright (c) 2026 The ovs-vhost-dma authors.
#
# Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE.
"""Stops one thread of a running process: a stuck DMA engine, for tests.

    dma-freeze-thread.py PID THREAD_NAME

Finds the thread of process PID whose name (/proc/PID/task/TID/comm) is
THREAD_NAME, for instance the copy thread "dma_skel_0" of a dma_skeleton
device, and stops that thread alone with ptrace (PTRACE_SEIZE, then
PTRACE_INTERRUPT: unlike SIGSTOP, which stops every thread of the process,
this stops one).  Prints "frozen TID" once the thread is stopped, then waits.
SIGTERM or SIGINT lets the thread run again (PTRACE_DETACH) and ends the
tool; so does the end of the tool in any other way, since the kernel
detaches a tracer that exits.  Needs CAP_SYS_PTRACE (root).
"""

import ctypes
import os
import signal
import sys
import time

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000               # __WALL: wait for threads too.


def find_thread(pid, name):
    for tid in sorted(os.listdir('/proc/%d/task' % pid), key=int):
        try:
            with open('/proc/%d/task/%s/comm' % (pid, tid)) as f:
                if f.read().strip() == name:
                    return int(tid)
        except OSError:
            pass
    return None


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    pid, name = int(sys.argv[1]), sys.argv[2]
    tid = find_thread(pid, name)
    if tid is None:
        sys.stderr.write('no thread named %s in process %d\n' % (name, pid))
        return 1

    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p,
                            ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long

    def ptrace(request, what):
        if libc.ptrace(request, tid, None, None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, '%s of thread %d: %s'
                          % (what, tid, os.strerror(err)))

    ptrace(PTRACE_SEIZE, 'PTRACE_SEIZE')
    ptrace(PTRACE_INTERRUPT, 'PTRACE_INTERRUPT')
    os.waitpid(tid, WALL)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    print('frozen %d at %.3f' % (tid, time.time()), flush=True)
    while not stop:
        time.sleep(0.1)
    try:
        ptrace(PTRACE_DETACH, 'PTRACE_DETACH')
    except OSError as e:
        # The thread is gone, with its process.
        print(e)
    print('released %d at %.3f' % (tid, time.time()), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
