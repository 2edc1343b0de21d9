"""The raw reference of the Python channel (scripts/bench/raw-pipe.ts): a bare loop on the same kind of pipes as a
jetbatch handler process (fd 3 in, fd 4 out), without jetbatch. Each request is ``u32 BE length | batch``; the
loop decodes the batch with msgpack as the runner does (a handler gets it decoded), does the same work as the
bench handler (none, or bench_work.burn), and answers ``u32 BE 4 | u32 BE batch length``.

    python3 raw_echo.py DECODE(0|1) ITERATIONS
"""
import os
import struct
import sys

import msgpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))
from bench_work import burn  # noqa: E402

decode = sys.argv[1] == "1"
iterations = int(sys.argv[2])
inp = open(3, "rb", buffering=0)
out = open(4, "wb", buffering=0)
unpack = struct.Struct(">I").unpack
pack = struct.Struct(">II").pack


def read_exact(n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = inp.readinto(view[got:])
        if not k:
            sys.exit(0)
        got += k
    return buf


while True:
    (length,) = unpack(read_exact(4))
    body = read_exact(length)
    if decode:
        msgpack.unpackb(body, raw=False, strict_map_key=False, timestamp=3)
    if iterations:
        burn(iterations)
    out.write(pack(4, length))
