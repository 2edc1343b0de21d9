"""Frames on the pipes between a jetbatch worker thread and this process (see src/worker/python/frames.ts).

    u32 BE frame length | u32 BE tail length | MessagePack header | tail (raw bytes)

The header is ``[kind, ...fields]``; the tail carries bytes that are already MessagePack (a batch, a result).
"""
import os
import struct
import threading

import msgpack

_PREFIX = struct.Struct(">II")
#: Most bytes one read of the request pipe asks for beyond the frame it needs.
READ_CHUNK = 256 * 1024
#: A frame at least this large is read into a buffer of its own instead of through the read buffer.
LARGE_FRAME = 64 * 1024


class Channel:
    """fd 3 carries requests to this process, fd 4 carries replies, log records and client calls back."""

    def __init__(self, read_fd=3, write_fd=4):
        self._in_fd = read_fd
        self._buf = bytearray()
        self._pos = 0
        self._out = open(write_fd, "wb", buffering=0)
        self._write_lock = threading.Lock()
        #: Only this process may use the channel: a forked child (multiprocessing, a DataLoader worker) inherits
        #: the descriptors, and its frames would interleave with ours.
        self.pid = os.getpid()

    def usable(self):
        return self.pid == os.getpid()

    def _fill(self, n):
        """Reads until at least ``n`` bytes are buffered: one read takes whatever the thread has written (a task's
        batches written ahead arrive together), up to READ_CHUNK beyond what is needed."""
        while len(self._buf) - self._pos < n:
            if self._pos:
                del self._buf[:self._pos]
                self._pos = 0
            chunk = os.read(self._in_fd, max(n - len(self._buf), READ_CHUNK))
            if not chunk:
                raise EOFError("the worker thread closed the channel")
            self._buf += chunk

    def buffered(self):
        """Bytes read from the request pipe and not yet taken as frames (a request written ahead, for instance)."""
        return len(self._buf) - self._pos

    def read(self):
        """The next frame as (header list, tail memoryview); EOFError when the thread is gone."""
        self._fill(4)
        (length,) = struct.unpack_from(">I", self._buf, self._pos)
        if length < LARGE_FRAME:
            self._fill(4 + length)
            # After the fill: it may have moved the buffered bytes to the front.
            start = self._pos + 4
            with memoryview(self._buf) as mv:
                body = bytes(mv[start:start + length])
            self._pos = start + length
        else:
            body = self._read_large(self._pos + 4, length)
        (tail_length,) = struct.unpack_from(">I", body, 0)
        view = memoryview(body)
        header = msgpack.unpackb(view[4:length - tail_length], raw=False, strict_map_key=False, timestamp=3)
        return header, view[length - tail_length:]

    def _read_large(self, start, length):
        """A large frame's body, read straight into a buffer of its own after what is already buffered."""
        body = bytearray(length)
        have = min(len(self._buf) - start, length)
        body[:have] = self._buf[start:start + have]
        del self._buf[:start + have]
        self._pos = 0
        view = memoryview(body)
        while have < length:
            k = os.readv(self._in_fd, [view[have:]])
            if not k:
                raise EOFError("the worker thread closed the channel")
            have += k
        return body

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
