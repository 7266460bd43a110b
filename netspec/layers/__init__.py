"""Caffe layers: one class per Caffe type, grouped by family (see registry.py and base.py)."""
from .registry import register, layer_class, layer_type_list  # noqa: F401
from .base import Layer  # noqa: F401


def __getattr__(name):
    """``netspec.layers`` is both this package and the DSL's ``L``: once the package is imported, Python
    resolves ``from netspec import layers`` to it, so layer-type names (capitalised, as every Caffe
    type) fall through to the DSL
    (``L.Convolution(...)`` -> ``netspec.spec.layers.Convolution``)."""
    if not name[:1].isupper():   # submodules (vision, caffe_math...) must import as usual
        raise AttributeError(f"module 'netspec.layers' has no attribute '{name}'")
    from netspec.spec import layers as _dsl_layers
    return getattr(_dsl_layers, name)
