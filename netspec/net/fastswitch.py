"""ONE switch for the CPU-only fast paths (oneDNN inference chains and linear, GEMM convolutions,
the per-sample LRN passes, the data_ptr-keyed weight caches).

They are hand-written for float32 on this CPU and are opaque to autocast, torch.export/ONNX and
torch.compile, so ``enabled(x)`` is False off the CPU, under autocast, while compiling/exporting and
inside ``disabled()``; the layers then run plain torch ops (same numbers to float rounding).

Placeholder for ``recaffe.netspec.net.kernels.enabled`` (being written on another branch): the two
have the same meaning; when kernels.py lands, this module becomes ``from .kernels import enabled,
disabled``.
"""
import contextlib
import threading

import torch

_state = threading.local()


def _off():
    return getattr(_state, "off", 0) > 0


def enabled(x=None):
    """Whether the CPU fast paths may run on tensor ``x`` now."""
    if torch.compiler.is_compiling() or _off():
        return False
    if x is not None:
        if x.device.type != "cpu":
            return False
        if torch.is_autocast_enabled("cpu"):
            return False
    return True


@contextlib.contextmanager
def disabled():
    """Plain torch ops only inside (export, compile, comparisons)."""
    _state.off = getattr(_state, "off", 0) + 1
    try:
        yield
    finally:
        _state.off -= 1
