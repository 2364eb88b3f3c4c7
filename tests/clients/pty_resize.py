"""Runs a command (an ssh client) on a fresh pty of 24x80, waits for the
remote side to print "24 80", resizes the pty to 33x111 (the kernel sends
SIGWINCH, ssh sends a window-change), then presses Enter until the remote
side prints "33 111". Usage: pty_resize.py CMD ARGS... The remote command
should print `stty size` for every line it reads. Exits 0 when both sizes
were seen, 1 otherwise; prints everything the pty said."""

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def main():
    argv = sys.argv[1:]
    pid, fd = pty.fork()
    if pid == 0:
        set_size(0, 24, 80)
        os.execvp(argv[0], argv)
    seen = b""
    deadline = time.monotonic() + 30
    resized = False
    next_enter = 0.0

    def read_some():
        nonlocal seen
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                return False
        return True

    while time.monotonic() < deadline:
        if not read_some():
            break
        now = time.monotonic()
        if not resized:
            if b"24 80" in seen:
                set_size(fd, 33, 111)
                resized = True
            elif now >= next_enter:
                os.write(fd, b"\n")
                next_enter = now + 0.5
        elif b"33 111" in seen:
            break
        elif now >= next_enter:
            os.write(fd, b"\n")
            next_enter = now + 0.2
    ok = resized and b"33 111" in seen
    try:
        os.write(fd, b"\x04")
    except OSError:
        pass
    time.sleep(0.2)
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    sys.stdout.write(seen.decode("utf-8", "replace"))
    sys.exit(0 if ok else 1)


main()
