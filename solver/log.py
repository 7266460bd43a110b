"""Caffe-format (glog) log lines, so tools/extra/parse_log.py, parse_log.sh and plot scripts work on
our logs (caffe-spec 7.2; glog's LogMessage prefix).

    log("Iteration 100, lr = 0.01", src="sgd_solver.cpp:106")
    -> I1123 12:00:00.123456 12345 sgd_solver.cpp:106] Iteration 100, lr = 0.01

Numbers go through ``num()``, C++ ``operator<<`` default formatting (6 significant digits, %g).
Lines go to the ``recaffe`` logger (a stderr handler is installed on first use unless the application
configured handlers itself); ``set_log_file`` adds a file, ``capture()`` collects lines in a list.
"""
import contextlib
import logging
import os
import sys
import time

import numpy as np

_LEVELS = {logging.DEBUG: "I", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E",
           logging.CRITICAL: "F"}
logger = logging.getLogger("recaffe")


class GlogFormatter(logging.Formatter):
    def format(self, record):
        t = record.created
        lt = time.localtime(t)
        usec = int((t - int(t)) * 1e6)
        src = getattr(record, "caffe_src", None) or f"{os.path.basename(record.pathname)}:{record.lineno}"
        return (f"{_LEVELS.get(record.levelno, 'I')}{lt.tm_mon:02d}{lt.tm_mday:02d} "
                f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d}.{usec:06d} {os.getpid():5d} "
                f"{src}] {record.getMessage()}")


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and tools may replace it)."""

    def emit(self, record):
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _ensure_handler():
    if not logger.handlers:
        h = _StderrHandler()
        h.setFormatter(GlogFormatter())
        logger.addHandler(h)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def log(msg, src="solver.cpp:0", level=logging.INFO):
    _ensure_handler()
    logger.log(level, msg, extra={"caffe_src": src})


def warn(msg, src="caffe.cpp:0"):
    log(msg, src, logging.WARNING)


def set_log_file(path):
    """Also write the log lines to ``path`` (appending)."""
    _ensure_handler()
    h = logging.FileHandler(path)
    h.setFormatter(GlogFormatter())
    logger.addHandler(h)
    return h


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []
        self.setFormatter(GlogFormatter())

    def emit(self, record):
        self.lines.append(self.format(record))


@contextlib.contextmanager
def capture():
    """Collect formatted lines (for tests): ``with capture() as lines: ...``."""
    _ensure_handler()
    h = _ListHandler()
    logger.addHandler(h)
    try:
        yield h.lines
    finally:
        logger.removeHandler(h)


def num(v):
    """C++ ostream default formatting of a float (6 significant digits)."""
    return f"{float(v):g}"


def output_lines(prefix, outputs, weights):
    """'    <prefix> net output #k: name = v [ (* w = w*v loss)]' for every element of every output
    blob, k running over elements (solver.cpp Step/Test); ``prefix`` None: 'name = v [...]' as
    caffe.cpp's test prints them. ``outputs``: [(name, flat values)]. w * v is a float product, as in Caffe."""
    lines, k = [], 0
    for name, values in outputs:
        w = weights.get(name, 0.0)
        for v in values:
            head = f"    {prefix} net output #{k}: " if prefix else ""
            line = f"{head}{name} = {num(v)}"
            if w:
                line += f" (* {num(w)} = {num(np.float32(w) * np.float32(v))} loss)"
            lines.append(line)
            k += 1
    return lines
