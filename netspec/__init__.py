"""Nets: the NetSpec DSL (prototxt out), the Net runtime (prototxt in, torch.nn.Module out), weights, data.

Names are imported lazily so that `import netspec` stays cheap and a partly built tree still imports.
"""
import importlib

_EXPORTS = {
    "NetSpec": "netspec.spec", "layers": "netspec.spec", "params": "netspec.spec", "to_proto": "netspec.spec",
    "Net": "netspec.net",
    "register_layer": ("netspec.layers.registry", "register"),
    "Layer": "netspec.layers.base",
    "layer_type_list": "netspec.layers.registry",
}


def __getattr__(name):
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'netspec' has no attribute '{name}'")
    mod, attr = target if isinstance(target, tuple) else (target, name)
    return getattr(importlib.import_module(mod), attr)
