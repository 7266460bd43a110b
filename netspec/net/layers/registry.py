"""Registry of layer classes, keyed by their exact Caffe ``type`` string.

A layer family file (any module of this package) registers each class once::

    @register("ReLU")
    class ReLU(Layer): ...

Users add their own types with the same decorator (``from recaffe.netspec import register_layer``).
A type is registered once: a second class for the same type is refused with an error unless
``replace=True`` is given (re-running the same class definition, e.g. a notebook cell or a module
reload, replaces it). The built-in families are found by listing this package's modules
(pkgutil), so a new family file needs no edit here.
"""
import importlib
import pkgutil

from recaffe.protos.errors import NetError

_REGISTRY = {}


def _same_definition(a, b):
    return a is b or (a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__)


def register(*type_names, replace=False):
    """Class decorator: make the class the implementation of the given Caffe layer types. A type
    already registered to another class raises NetError unless ``replace=True``."""
    if not type_names or not all(isinstance(t, str) and t for t in type_names):
        raise NetError(f"register: give one or more non-empty layer type names, got {type_names!r}")

    def deco(cls):
        for name in type_names:
            old = _REGISTRY.get(name)
            if old is not None and not replace and not _same_definition(old, cls):
                raise NetError(f"layer type '{name}' is already registered to {old.__module__}.{old.__qualname__}; "
                               f"cannot register {cls.__module__}.{cls.__qualname__} for it too (pass "
                               f"replace=True to replace it)")
        for name in type_names:
            _REGISTRY[name] = cls
        cls.caffe_types = tuple(type_names)
        return cls
    return deco


def layer_class(type_name, layer_name="?"):
    """The class registered for ``type_name``; a NetError naming the layer and the known types otherwise."""
    _load_builtin_families()
    try:
        return _REGISTRY[type_name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise NetError(f"layer '{layer_name}': unknown layer type '{type_name}'; known types: {known}") from None


def find_layer_class(type_name):
    """The class registered for ``type_name``, or None."""
    _load_builtin_families()
    return _REGISTRY.get(type_name)


def layer_type_list():
    _load_builtin_families()
    return sorted(_REGISTRY)


_loaded = False


def _load_builtin_families():
    """Import every module of this package once (each registers its classes on import)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = __name__.rpartition(".")[0]
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
