"""Compatibility with Cortex handlers: ``from cortex_internal.lib.log import logger`` is ``jetbatch.logger``."""
from jetbatch import logger

__all__ = ["logger"]
