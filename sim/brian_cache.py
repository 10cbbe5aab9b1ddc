"""Brian2's note on the size of its compiled-code cache, kept off pcsim's output.

At its import Brian2 walks its Cython cache (``~/.cython/brian_extensions``) and, past
``prefs.codegen.max_cache_dir_size`` (1 GB), logs a two-line INFO note on the console at every
import. pcsim's commands promise one line per warning (and a progress bar that leaves one
line), so ``import sim`` drops that note before Brian2 is imported; docs/running.md says where
the cache is and how to empty it (``brian2.clear_cache("cython")``).
"""

from __future__ import annotations

import logging

NOTE = "Cache size for target"
LOGGER = "brian2.brian2"  # the logger Brian2's ``check_cache`` logs through (brian2 2.9)


class _CacheSizeNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOTE)


logging.getLogger(LOGGER).addFilter(_CacheSizeNote())  # once: a module runs once a process
