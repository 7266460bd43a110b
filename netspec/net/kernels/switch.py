"""The one switch of the CPU fast paths (see the package docstring for the contract).

``enabled(*tensors)`` is the single test every selector makes before it hands out a kernel. It is
False when

* the fast paths are switched off: globally (``set_enabled(False)``), or in this thread for the
  duration of a ``with disabled():`` block (a Net with ``fast_inference = False`` runs its forward
  inside one),
* graph capture is going on: ``torch.compile`` / dynamo (``torch.compiler.is_compiling()``),
  ``torch.export`` (``torch.compiler.is_exporting()``), ONNX export of either exporter
  (``torch.onnx.is_in_onnx_export()``), TorchScript tracing or scripting: the kernels call private
  oneDNN ops and key caches on ``data_ptr()``, which graph capture cannot see through,
* CPU autocast is on (``torch.is_autocast_enabled("cpu")``): the kernels are float32-only and their
  autograd Functions would mix dtypes, so autocast must get plain torch ops to act on,
* any given tensor is not a float32 tensor on the CPU (CUDA, meta, float64, bfloat16 ... take the
  plain torch ops the layers are written in).
"""
import contextlib
import sys
import threading

import torch



class _Local(threading.local):
    off = 0     # depth of this thread's disabled() blocks (a class default: no AttributeError per read)


_global_on = True
_local = _Local()


def set_enabled(on):
    """Switch every CPU fast path on or off for the whole process (default: on). Returns the old value."""
    global _global_on
    old, _global_on = _global_on, bool(on)
    return old


@contextlib.contextmanager
def disabled():
    """Run a block with every CPU fast path off in this thread (nests; restores on exit)."""
    depth = _local.off
    _local.off = depth + 1
    try:
        yield
    finally:
        _local.off = depth


def tracing():
    """Whether a graph is being captured (torch.compile / torch.export / ONNX / TorchScript): no
    private ops, no ``data_ptr()`` cache keys, no Python-side decisions on autograd internals."""
    return (torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()
            or torch.jit.is_scripting() or _onnx_exporting())


def _onnx_exporting():
    """torch.onnx.is_in_onnx_export(), which imports the exporters at every call (2-3 us, and the
    selectors ask once per layer): no export can run before torch.onnx's internals are loaded."""
    return "torch.onnx._internal" in sys.modules and torch.onnx.is_in_onnx_export()


def switched_on():
    """The switch alone (global flag and this thread's ``disabled()`` blocks), no tensor checks."""
    return _global_on and not _local.off


def enabled(*tensors):
    """Whether the CPU fast paths may run now on ``tensors`` (None entries are skipped)."""
    # tracing first: under dynamo it folds to a constant before anything it cannot trace is touched
    if tracing() or not _global_on or _local.off or torch.is_autocast_enabled("cpu"):
        return False
    for t in tensors:
        if t is not None and (t.dtype != torch.float32 or not t.is_cpu):
            return False
    return True
