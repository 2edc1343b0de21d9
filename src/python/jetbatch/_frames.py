"""Frames on the pipes between a jetbatch worker thread and this process (see src/worker/python/frames.ts).

    u32 BE frame length | u32 BE tail length | MessagePack header | tail (raw bytes)

The header is ``[kind, ...fields]``; the tail carries bytes that are already MessagePack (a batch, a result).
"""
import os
import struct
import threading

import msgpack

_PREFIX = struct.Struct(">II")


class Channel:
    """fd 3 carries requests to this process, fd 4 carries replies, log records and client calls back."""

    def __init__(self, read_fd=3, write_fd=4):
        self._in = open(read_fd, "rb", buffering=0)
        self._out = open(write_fd, "wb", buffering=0)
        self._write_lock = threading.Lock()
        #: Only this process may use the channel: a forked child (multiprocessing, a DataLoader worker) inherits
        #: the descriptors, and its frames would interleave with ours.
        self.pid = os.getpid()

    def usable(self):
        return self.pid == os.getpid()

    def _read_exact(self, n):
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self._in.readinto(view[got:])
            if not k:
                raise EOFError("the worker thread closed the channel")
            got += k
        return buf

    def read(self):
        """The next frame as (header list, tail memoryview); EOFError when the thread is gone."""
        (length,) = struct.unpack(">I", bytes(self._read_exact(4)))
        body = self._read_exact(length)
        (tail_length,) = struct.unpack_from(">I", body, 0)
        view = memoryview(body)
        header = msgpack.unpackb(view[4:length - tail_length], raw=False, strict_map_key=False, timestamp=3)
        return header, view[length - tail_length:]

    def write(self, header, tail=b""):
        head = msgpack.packb(header, use_bin_type=True, default=to_msgpack)
        prefix = _PREFIX.pack(4 + len(head) + len(tail), len(tail))
        with self._write_lock:
            self._write_all(prefix + head)
            if tail:
                self._write_all(tail)

    def _write_all(self, data):
        view = memoryview(data)
        while view:
            n = self._out.write(view)
            view = view[n:]


def to_msgpack(obj):
    """MessagePack's fallback for types it does not know: numpy arrays and scalars (and torch tensors) by their
    ``tolist()``, sets as lists, dates as ISO 8601 strings. Anything else cannot cross."""
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    isoformat = getattr(obj, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    raise TypeError("cannot encode a value of type %s.%s" % (type(obj).__module__, type(obj).__qualname__))
