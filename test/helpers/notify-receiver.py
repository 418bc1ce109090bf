#!/usr/bin/env python3
"""Stands in for systemd's notify socket: binds a unix datagram socket (a path, or "@name" for an abstract name),
then prints each datagram as one JSON line with the sender's pid, which the kernel attaches (SO_PASSCRED), as
systemd reads it to apply NotifyAccess=main. Exits after max_seconds without a datagram, or on SIGTERM.

usage: notify-receiver.py SOCKET [MAX_SECONDS]"""
import json
import os
import socket
import struct
import sys
import time

name = sys.argv[1]
max_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
address = "\0" + name[1:] if name.startswith("@") else name
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
sock.bind(address)
sock.settimeout(max_seconds)
print(json.dumps({"listening": name}), flush=True)
ucred = struct.calcsize("3i")
try:
    while True:
        try:
            data, ancillary, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(ucred))
        except socket.timeout:
            break
        pid = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload[:ucred])[0]
        line = {"ms": time.monotonic() * 1000, "pid": pid, "message": data.decode("utf-8", "replace")}
        print(json.dumps(line), flush=True)
finally:
    sock.close()
    if not name.startswith("@"):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
