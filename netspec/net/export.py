"""ONNX export of a deploy Net (torch's dynamo exporter), checked against onnxruntime.

    from recaffe.netspec.net.export import export_onnx
    report = export_onnx(net, "model.onnx", batch="dynamic")   # or batch=N, opset=18
    print(report.max_diff)

The ONNX graph's inputs and outputs carry the net's blob names (``net.inputs``, ``net.outputs``).
The export traces plain torch ops: the CPU fast paths (oneDNN chains and linear, GEMM convolutions,
per-sample LRN passes, data_ptr-keyed caches) step aside (netspec.net.kernels), the per-shape layer
variants are not consulted (so the batch may be symbolic: ``batch="dynamic"``), and it runs under
``no_grad`` (the custom autograd Functions are not traced). Only torch.export's (dynamo) exporter is
used: the legacy TorchScript tracer silently writes a graph without inputs for these nets.

Nets that cannot be exported are refused with one line: Python layers (numpy code), data layers other
than Input (they read files), TRAIN-phase nets, losses, Accuracy and HDF5Output (not inference), and
the fork layers DetectionOutput (SSD: numpy NMS) and ROIPooling (R-CNN: data-dependent bins). The other
fork layers (Normalize, Permute, PriorBox, Interp, BN, Upsample, Axpy, ConvolutionDepthwise,
ShuffleChannel) are plain torch ops and export like BVLC's.
``onnx``, ``onnxscript`` and ``onnxruntime`` are an optional extra: ``pip install recaffe[onnx]``.
"""
import contextlib
import os

import numpy as np
import torch

from recaffe.protos.errors import RecaffeError
from . import kernels


class ExportError(RecaffeError):
    """The net cannot be exported to ONNX, or the exported model does not reproduce it."""


_NOT_INFERENCE = {"Accuracy": "a metric", "HDF5Output": "it writes files", "Python": "it runs numpy code",
                  # fork layers whose work is host code that a graph cannot hold
                  "DetectionOutput": "its non-maximum suppression runs in numpy (export the net up to its "
                                     "bottoms and run the detection step outside ONNX)",
                  "ROIPooling": "its bins depend on the ROI values (data-dependent loops)"}


def check_exportable(net):
    """Raise ExportError (one line) when ``net`` has a layer ONNX cannot express."""
    where = f"net '{net.name}'"
    if net.phase != "TEST":
        raise ExportError(f"{where}: phase {net.phase} cannot be exported to ONNX; export the TEST (deploy) net")
    for name, t, layer in zip(net.layer_names, net.layer_types, net.layers):
        why = _NOT_INFERENCE.get(t)
        if why is None and getattr(layer, "is_loss", False):
            why = "a loss (training only)"
        if why is None and getattr(layer, "is_data", False) and not getattr(layer, "feeds_inputs", False):
            why = "a data layer (it reads files); use an Input layer"
        if why:
            raise ExportError(f"{where}: layer '{name}' ({t}) cannot be exported to ONNX: {why}; export a deploy "
                              f"net (Input layers feeding the model layers only)")
    if not net.inputs:
        raise ExportError(f"{where}: no Input layer; ONNX needs the net's inputs declared by Input layers")


class _Positional(torch.nn.Module):
    """The net with positional inputs (net.inputs order) returning a tuple (net.outputs order)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, *xs):
        out = self.net(**dict(zip(self.net.inputs, xs)))
        return tuple(out[n] for n in self.net.outputs)


@contextlib.contextmanager
def traceable(net):
    """Plain torch ops, no per-shape layer variants (any batch), no gradient: what export and compile
    trace."""
    steps = list(net.steps)
    keys = [s.key for s in steps]
    try:
        for s in steps:
            s.key = None
        with kernels.disabled(), torch.no_grad():
            yield
    finally:
        for s, k in zip(steps, keys):
            s.key = k


@contextlib.contextmanager
def _quiet():
    """The exporter's progress lines and notes (torchvision ops skipped, deprecations) stay out of the
    user's output; errors still raise."""
    import io
    import logging
    import warnings
    saved = {n: logging.getLogger(n).level for n in ("torch.onnx", "torch._dynamo", "torch.export")}
    for n in saved:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


class Report:
    def __init__(self, path, batch, opset, max_diff, checked_batch):
        self.path, self.batch, self.opset, self.max_diff, self.checked_batch = path, batch, opset, max_diff, checked_batch

    def line(self):
        b = "dynamic batch" if self.batch == "dynamic" else f"batch {self.batch}"
        if self.max_diff is None:
            return f"wrote {self.path} (opset {self.opset}, {b}); not checked"
        return (f"wrote {self.path} (opset {self.opset}, {b}); onnxruntime vs recaffe at batch {self.checked_batch}: "
                f"max abs difference {self.max_diff:.3g}")


def _require(module):
    try:
        return __import__(module)
    except ImportError:
        raise ExportError(f"ONNX export needs {module}: pip install onnx onnxscript onnxruntime "
                          "(or pip install recaffe[onnx])") from None


def example_inputs(net, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn((batch,) + tuple(net.blob_shapes[n][1:]), generator=g) for n in net.inputs]


def export_onnx(net, path, batch=None, opset=18, check=True, tolerance=1e-4, optimize=True):
    """Write ``net`` (a TEST-phase Net) to ``path`` as ONNX. batch: None (the prototxt's), an int, or
    "dynamic" (a symbolic batch axis on every input and output). With ``check``, onnxruntime runs the
    file on random inputs and its outputs are compared to the net's (ExportError beyond
    ``tolerance``, relative to each output's largest magnitude). Returns a Report."""
    check_exportable(net)
    _require("onnxscript")
    net = net.to("cpu")
    dynamic = batch == "dynamic"
    if not dynamic and batch is not None and (not isinstance(batch, int) or batch < 1):
        raise ExportError(f"batch must be a positive integer or 'dynamic', got {batch!r}")
    base = net.blob_shapes[net.inputs[0]][0] if net.blob_shapes[net.inputs[0]] else 1
    trace_batch = 2 if dynamic else (batch or base)
    xs = example_inputs(net, trace_batch)
    kw = {}
    if dynamic:
        dim = torch.export.Dim("batch", min=1, max=1 << 16)
        kw["dynamic_shapes"] = (tuple({0: dim} for _ in xs),)     # forward(*xs): one var-positional
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    path = str(path)
    model = _Positional(net).eval()
    with traceable(net), _quiet():
        try:
            program = torch.onnx.export(model, tuple(xs), None, dynamo=True, opset_version=int(opset),
                                        input_names=list(net.inputs), output_names=list(net.outputs),
                                        external_data=params > 1.5e9, report=False, verbose=False,
                                        optimize=optimize, **kw)
        except Exception as e:   # noqa: BLE001 - torch.export errors are many; one line for the user
            if os.environ.get("RECAFFE_DEBUG_EXPORT"):
                raise
            lines = [ln for ln in str(e).strip().splitlines() if ln.strip()] or [type(e).__name__]
            summary = [i for i, ln in enumerate(lines) if ln.startswith("## Exception summary")]
            msg = lines[summary[0] + 1] if summary and summary[0] + 1 < len(lines) else lines[0]
            raise ExportError(f"net '{net.name}': torch.onnx.export failed: {msg[:300]}") from None
    program.save(path, external_data=params > 1.5e9)
    report = Report(path, "dynamic" if dynamic else trace_batch, int(opset), None, None)
    if check:
        check_batch = 3 if dynamic else trace_batch
        report.max_diff = compare(net, path, check_batch, tolerance)
        report.checked_batch = check_batch
    return report


def run_onnxruntime(path, inputs):
    """{output name: array} of the ONNX file at ``path`` on {input name: array}."""
    ort = _require("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {k: np.ascontiguousarray(v, np.float32) for k, v in inputs.items()})))


def compare(net, path, batch, tolerance=1e-4, seed=1):
    """Max abs difference between onnxruntime and the net at ``batch`` (ExportError when an output
    differs by more than ``tolerance`` times its largest magnitude)."""
    xs = example_inputs(net, batch, seed)
    with torch.no_grad():
        want = net(**dict(zip(net.inputs, xs)))
    got = run_onnxruntime(path, {n: x.numpy() for n, x in zip(net.inputs, xs)})
    worst = 0.0
    for name, w in want.items():
        w = w.numpy()
        g = got.get(name)
        if g is None or g.shape != w.shape:
            raise ExportError(f"{path}: output '{name}' has shape {None if g is None else g.shape}, the net's is "
                              f"{w.shape}")
        diff = float(np.abs(g - w).max()) if w.size else 0.0
        if diff > tolerance * max(float(np.abs(w).max()), 1.0):
            raise ExportError(f"{path}: output '{name}' differs from the net by {diff:.3g} at batch {batch}")
        worst = max(worst, diff)
    return worst


def default_output(model_path):
    return os.path.splitext(str(model_path))[0] + ".onnx"
