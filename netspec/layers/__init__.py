"""Caffe layers: one class per Caffe type, grouped by family (see registry.py and base.py)."""
from .registry import register, layer_class, layer_type_list  # noqa: F401
from .base import Layer  # noqa: F401


def __getattr__(name):
    """``netspec.layers`` is both this package and the DSL's ``L``: once the package is imported, Python
    resolves ``from netspec import layers`` to it, so layer-type names fall through to the DSL
    (``L.Convolution(...)`` -> ``netspec.spec.layers.Convolution``)."""
    if name.startswith("__"):
        raise AttributeError(name)
    from netspec.spec import layers as _dsl_layers
    return getattr(_dsl_layers, name)
