"""recaffe.netspec: the NetSpec DSL (prototxt out), as pycaffe's ``caffe.net_spec``.

    from recaffe.netspec import NetSpec, layers as L, params as P, to_proto

The DSL lives here (spec.py for nets, solverspec.py for solvers and the prototxt writer) and never
imports the runtime. The runtime (prototxt in, ``torch.nn.Module`` out) is ``recaffe.netspec.net``,
weights I/O ``recaffe.netspec.weights``, data sources and the DataTransformer ``recaffe.netspec.data``.
``Net``, ``Layer``, ``register_layer`` and ``layer_type_list`` are re-exported lazily, so importing the
DSL does not import torch.
"""
import importlib

from .spec import NetSpec, layers, params, to_proto, Top, Function, param_name_dict, assign_proto  # noqa: F401
from .solverspec import SolverSpec, solver, to_prototxt, write  # noqa: F401

_RUNTIME = {
    "Net": ("recaffe.netspec.net", "Net"),
    "Layer": ("recaffe.netspec.net.layers", "Layer"),
    "register_layer": ("recaffe.netspec.net.layers", "register"),
    "layer_type_list": ("recaffe.netspec.net.layers", "layer_type_list"),
}


def __getattr__(name):
    target = _RUNTIME.get(name)
    if target is None:
        raise AttributeError(f"module 'recaffe.netspec' has no attribute '{name}'")
    return getattr(importlib.import_module(target[0]), target[1])
