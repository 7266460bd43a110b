"""Caffe layers: one class per Caffe type, grouped by family (see registry.py and base.py)."""
from .registry import register, layer_class, layer_type_list  # noqa: F401
from .base import Layer  # noqa: F401
