"""``jetbatch.logger``: a standard ``logging.Logger`` whose records become pino JSON lines of the daemon.

A record travels to the worker thread as a log frame; the thread writes it with its own logger, so the line carries
``api_name, job_id, batch_id, worker, host, daemon, pid, level, time``. The keys of ``extra`` become top-level keys
of the line (one level: nested dicts stay nested). A key that jetbatch or the seed's format owns is renamed with an
``extra_`` prefix instead of overwriting it. A line over the daemon's limit (5 MB by default) is dropped with a
warning line.
"""
import io
import json
import logging
import os
import sys
import threading
import time

from . import _state

#: Keys a handler cannot set: the seed's log format and jetbatch's own metadata.
RESERVED_KEYS = frozenset([
    "asctime", "levelname", "message", "labels", "process",
    "level", "time", "msg", "pid", "hostname", "host", "daemon", "api_name", "job_id", "batch_id", "worker",
])

_LEVELS = [
    (logging.CRITICAL, "fatal"),
    (logging.ERROR, "error"),
    (logging.WARNING, "warn"),
    (logging.INFO, "info"),
    (logging.DEBUG, "debug"),
]
_PINO_NUMBERS = {"trace": 10, "debug": 20, "info": 30, "warn": 40, "error": 50, "fatal": 60}
_FROM_PINO = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "error": logging.ERROR, "fatal": logging.CRITICAL, "silent": logging.CRITICAL + 10}


def _level_name(levelno):
    for n, name in _LEVELS:
        if levelno >= n:
            return name
    return "debug"


def _plain(value, depth=0):
    """A value a JSON log line can hold (numpy scalars and arrays, bytes, objects made printable)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "<%d bytes>" % len(value)
    if depth > 20:
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        try:
            return _plain(tolist(), depth + 1)
        except Exception:
            pass
    return str(value)


def record_fields(extra):
    """The keys of ``extra`` as they appear on the line: reserved ones prefixed with ``extra_``."""
    fields = {}
    for key, value in (extra or {}).items():
        key = str(key)
        fields[("extra_" + key) if key in RESERVED_KEYS else key] = _plain(value)
    return fields


class _JetbatchLogger(logging.Logger):
    def makeRecord(self, name, level, fn, lno, msg, args, exc_info, func=None, extra=None, sinfo=None):
        # extra is kept aside rather than set on the record: any key is allowed (the stdlib refuses "message" etc.).
        record = super().makeRecord(name, level, fn, lno, msg, args, exc_info, func, None, sinfo)
        record.jetbatch_extra = extra
        return record


class _FrameHandler(logging.Handler):
    def emit(self, record):
        try:
            fields = record_fields(getattr(record, "jetbatch_extra", None))
            if record.exc_info:
                etype, evalue, _ = record.exc_info
                fields["error"] = {"type": getattr(etype, "__name__", str(etype)), "message": str(evalue),
                                 "stack": self.formatter.formatException(record.exc_info) if self.formatter else
                                 logging.Formatter().formatException(record.exc_info)}
            send(_level_name(record.levelno), record.getMessage(), fields)
        except Exception:
            self.handleError(record)


def send(level, msg, fields):
    """Sends one log record to the worker thread (or, outside a worker, prints it as a JSON line on stderr)."""
    limit = int(_state.settings.get("max_line_bytes") or 5 * 1024 * 1024)
    channel = _state.channel
    if channel is None or not channel.usable():
        # Outside a worker, or in a process forked by the handler: a JSON line on stderr (the worker thread logs
        # what arrives on the process's stderr).
        line = dict(fields, level=_PINO_NUMBERS.get(level, 30), time=int(time.time() * 1000), msg=msg)
        os.write(2, (json.dumps(line, default=str) + "\n").encode("utf-8", "replace"))
        return
    size = len(msg.encode("utf-8", "replace")) + len(json.dumps(fields, default=str))
    if size > limit:
        channel.write(["log", "warn", "log line dropped: %d bytes exceeds the %d-byte limit" % (size, limit),
                       {"original_msg": msg[:200], "original_level": level, "dropped_bytes": size}])
        return
    channel.write(["log", level, msg, fields])


logger = _JetbatchLogger("jetbatch")
logger.addHandler(_FrameHandler())
logger.propagate = False


def configure(pino_level):
    logger.setLevel(_FROM_PINO.get(pino_level, logging.INFO))


class StreamToLog(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` of the handler process: each line printed becomes a log line (info for
    stdout, warn for stderr) sent on the frame channel, so it carries the batch's metadata and arrives in order
    with the batch's answer. Output written to the file descriptors directly (C libraries, subprocesses) is still
    read by the worker thread from the process's stdout and stderr pipes."""

    def __init__(self, level, stream, fd):
        super().__init__()
        self._level = level
        self._stream = stream
        self._fd = fd
        self._partial = ""
        self._lock = threading.Lock()

    @property
    def encoding(self):
        return "utf-8"

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        return self._fd

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        with self._lock:
            self._partial += text
            if "\n" not in self._partial:
                return len(text)
            *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._send(line)
        return len(text)

    def flush(self):
        with self._lock:
            line, self._partial = self._partial, ""
        if line:
            self._send(line)

    def _send(self, line):
        channel = _state.channel
        try:
            if channel is None or not channel.usable():
                raise OSError("no channel in this process")
            send(self._level, line.rstrip("\r"), {"stream": self._stream})
        except Exception:
            os.write(self._fd, (line + "\n").encode("utf-8", "replace"))

    @property
    def buffer(self):
        """For code that writes bytes (``sys.stdout.buffer.write``): decoded as UTF-8 into the same lines."""
        return _BytesToText(self)


class _BytesToText(io.RawIOBase):
    def __init__(self, text):
        super().__init__()
        self._text = text

    def writable(self):
        return True

    def write(self, data):
        self._text.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self):
        self._text.flush()
