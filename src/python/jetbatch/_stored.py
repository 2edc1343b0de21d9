"""``jetbatch.open(url)``: a stored object's bytes as a binary file object, read through the worker thread (the
daemon's stores: ``file:///abs/path``, ``obj://BUCKET/key`` over its NATS connection, ``s3://bucket/key`` with its
S3 settings), so a handler of a ``file_path_lister`` job reads its URLs with no NATS or S3 package in Python. The file
is open until it is closed or the handler call that opened it returns (``__init__``, ``handle_batch``,
``on_job_complete``); calls may only be made from the handler's own thread while it runs, as client calls."""
import io

from ._client import Client, ClientError

#: Bytes asked of the worker thread at a time.
BUFFER_SIZE = 1 << 20


class StoreError(ClientError):
    """Reading a stored object failed; ``code`` is ``JB_STORE_NOT_FOUND``, ``JB_STORE_FAILED`` or
    ``JB_INVALID_STORE_URL`` (docs/errors.md)."""


def _call(method, args):
    try:
        return Client._call(method, args, "jetbatch.open()")
    except StoreError:
        raise
    except ClientError as e:
        raise StoreError(str(e), e.code, e.name) from None


class _StoredRaw(io.RawIOBase):
    def __init__(self, url, handle):
        super().__init__()
        self.name = url
        self._handle = handle
        self._eof = False

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.closed:
            raise ValueError("I/O operation on closed stored object")
        if self._eof or len(buffer) == 0:
            return 0
        data = _call("read", [self._handle, len(buffer)])
        n = len(data)
        if n == 0:
            self._eof = True
            return 0
        buffer[:n] = data
        return n

    def close(self):
        if not self.closed:
            handle, self._handle = self._handle, None
            try:
                _call("close", [handle])
            except ClientError:
                pass  # outside a handler call (garbage collected later): the thread closed it already
        super().close()


def open(url, buffering=BUFFER_SIZE):
    """Opens a stored object for reading: a buffered binary file object (``read``, ``readline``, iteration,
    ``with``). Wrap it in ``io.TextIOWrapper(f, encoding="utf-8")`` for text, ``gzip.GzipFile(fileobj=f)`` for
    ``.gz``. Raises StoreError (``code``: JB_STORE_NOT_FOUND, JB_STORE_FAILED, JB_INVALID_STORE_URL)."""
    if not isinstance(url, str):
        raise StoreError("jetbatch.open() takes a URL string, got %s" % type(url).__name__, "JB_INVALID_STORE_URL")
    handle = _call("open", [url])
    return io.BufferedReader(_StoredRaw(url, handle), buffering)
