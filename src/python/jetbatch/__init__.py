"""What a Python handler imports from jetbatch (shipped with the npm package, on the handler process's PYTHONPATH).

- ``PermanentError``: raise it from ``handle_batch`` when a retry cannot help; the batch is dead-lettered at once.
- ``logger``: a ``logging.Logger`` whose lines carry the job's metadata (``logger.info("msg", extra={...})``).
- ``client()``: submit and follow jobs from a handler (job chaining).
- ``open(url)``: read a stored object (``file://``, ``obj://``, ``s3://``: a ``file_path_lister`` job's URLs).
- ``extend_lease()``: a long batch is still healthy; ``metrics``: handler metrics on the daemon's /metrics.
"""
from ._client import ClientError, client
from ._handler_api import extend_lease, metrics
from ._log import RESERVED_KEYS, logger
from ._stored import StoreError, open


class PermanentError(Exception):
    """A failure that retrying cannot fix (bad input, a missing model): the batch is dead-lettered at once.
    ``code`` is kept on the dead letter (default ``JB_HANDLER_PERMANENT``)."""

    permanent = True

    def __init__(self, message="", code="JB_HANDLER_PERMANENT"):
        super().__init__(message)
        self.code = code


# Not `open`: `from jetbatch import *` must not shadow the builtin (use jetbatch.open).
__all__ = ["PermanentError", "ClientError", "StoreError", "client", "extend_lease", "logger", "metrics", "RESERVED_KEYS"]
