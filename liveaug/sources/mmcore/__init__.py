"""Micro-Manager through pymmcore-plus: a source, the simulated microscope as Python devices,
and acquisition actions fed into a running queue-driven MDA.

Importing pymmcore-plus configures logging for the whole process (root logger to DEBUG, its own
stderr handler, a log file in the user's data folder). This package imports it once, here, and
undoes that: liveaug's logging stays as the command set it, pymmcore-plus' records (warnings and
up) go through it, and no log file is written unless ``PYMM_LOG_FILE`` asks for one. Its signals
are psygnal's even when a Qt application runs. Cores nobody holds are collected at exit, while
the interpreter is whole (pymmcore aborts the process when one dies during teardown).
"""

from __future__ import annotations

import atexit
import gc
import logging
import os

# its log file handler is removed below; pointed at the null device it creates no file either
# (PYMM_LOG_FILE "0" still means the default file in the user's data folder)
os.environ.setdefault("PYMM_LOG_FILE", os.devnull)
# liveaug's engine relays signals to the GUI itself: the MDA's frames must arrive on the MDA
# thread (psygnal), not be queued to a Qt main thread (pymmcore-plus' choice when Qt runs)
os.environ.setdefault("PYMM_SIGNALS_BACKEND", "psygnal")
_root = logging.getLogger()
_level = _root.level
import pymmcore_plus  # noqa: E402, F401  (configures logging on import; undone below)

_root.setLevel(_level)
_pmm = logging.getLogger("pymmcore-plus")
for _handler in list(_pmm.handlers):
    _pmm.removeHandler(_handler)
_pmm.setLevel(logging.WARNING)
_pmm.propagate = True

# A core with a Python camera still alive when the interpreter tears its modules down aborts
# the process in pymmcore's destructor ("FATAL: exception not rethrown", exit 134). Collecting
# at exit, while the interpreter is whole, destroys cores nothing holds any more first.
atexit.register(gc.collect)
