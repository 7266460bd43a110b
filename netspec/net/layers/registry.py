"""Registry of layer classes, keyed by their exact Caffe ``type`` string.

A layer family file registers each class once::

    @register("ReLU")
    class ReLU(Layer): ...

Users add their own types with the same decorator (``from netspec import register_layer``).
"""
from recaffe.protos.errors import NetError

_REGISTRY = {}


def register(*type_names):
    """Class decorator: make the class the implementation of the given Caffe layer types."""
    def deco(cls):
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


def layer_type_list():
    _load_builtin_families()
    return sorted(_REGISTRY)


_loaded = False


def _load_builtin_families():
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    for mod in ("input", "common", "neuron", "vision", "pooling", "linear", "normalization", "loss", "loss_metric",
                "recurrent", "data", "window_data", "python",
                # fork families (protos/forkschema): SSD, mobile nets, SegNet, PSPNet, Fast/Faster R-CNN, SENet
                "ssd", "ssd_detection", "mobilenet", "segnet", "pspnet", "rcnn", "senet"):
        try:
            importlib.import_module(f"recaffe.netspec.net.layers.{mod}")
        except ModuleNotFoundError as e:  # a family not written yet
            if e.name != f"recaffe.netspec.net.layers.{mod}":
                raise
