"""The layer registry and contract (netspec/net/layers/registry.py, base.py): every registered built-in
type builds from a minimal LayerParameter and its declared top shapes are those of a forward on random
input; registration refuses duplicates; the parameter message handed to setup(p) comes from the type.

MINIMAL lists, for every built-in type, the smallest valid layer: its parameter text, its bottoms
(a shape: random normal values; ("pos", shape): positive values; ("int", shape, n): integers in
[0, n); ("ones", shape)) and its top count. A new built-in type without an entry fails
test_every_builtin_type_has_an_entry."""
import importlib
import os
import pkgutil
import sys

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from recaffe.netspec.net.layers import registry
from recaffe.netspec.net.layers.base import Layer, param_field_for_type
from recaffe.netspec.net.layers.registry import layer_class, layer_type_list, register
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "golden", "data")
BUILTIN_PREFIX = "recaffe.netspec.net.layers."
IMG = (2, 3, 6, 6)

MINIMAL = {
    "AbsVal": ("", [(2, 3)], 1),
    "Accuracy": ("", [(4, 5), ("int", (4,), 5)], 1),
    "ArgMax": ("", [(2, 5)], 1),
    "BNLL": ("", [(2, 3)], 1),
    "BatchNorm": ("", [IMG], 1),
    "BatchReindex": ("", [(4, 3), ("int", (5,), 4)], 1),
    "Bias": ("", [(2, 3, 4)], 1),
    "Clip": ("clip_param { min: -0.5 max: 0.5 }", [(2, 3)], 1),
    "Concat": ("", [(2, 3, 4), (2, 5, 4)], 1),
    "ContrastiveLoss": ("", [(4, 3, 1, 1), (4, 3, 1, 1), ("int", (4, 1, 1, 1), 2)], 1),
    "Convolution": ("convolution_param { num_output: 4 kernel_size: 3 }", [IMG], 1),
    "Crop": ("crop_param { axis: 2 offset: 1 }", [(2, 3, 8, 8), IMG], 1),
    "Data": ('data_param { source: "%s" batch_size: 2 backend: LMDB }' % os.path.join(DATA, "lmdb_raw"), [], 2),
    "Deconvolution": ("convolution_param { num_output: 4 kernel_size: 3 stride: 2 }", [IMG], 1),
    "Dropout": ("", [(2, 3)], 1),
    "DummyData": ('dummy_data_param { shape { dim: 2 dim: 3 } data_filler { type: "gaussian" } }', [], 1),
    "ELU": ("", [(2, 3)], 1),
    "Eltwise": ("", [(2, 3), (2, 3)], 1),
    "Embed": ("embed_param { num_output: 4 input_dim: 10 }", [("int", (2, 3), 10)], 1),
    "EuclideanLoss": ("", [(2, 3), (2, 3)], 1),
    "Exp": ("", [(2, 3)], 1),
    "Filter": ("", [(4, 3), ("ones", (4, 1))], 1),
    "Flatten": ("", [(2, 3, 4)], 1),
    "HDF5Data": ('hdf5_data_param { source: "{tmp}/h5list.txt" batch_size: 2 }', [], 2),
    "HDF5Output": ('hdf5_output_param { file_name: "{tmp}/out.h5" }', [(2, 3), (2,)], 0),
    "HingeLoss": ("", [(2, 5), ("int", (2,), 5)], 1),
    "Im2col": ("convolution_param { kernel_size: 3 }", [IMG], 1),
    "ImageData": ('image_data_param { source: "%s" root_folder: "%s/" batch_size: 2 new_height: 8 new_width: 8 }'
                  % (os.path.join(DATA, "images", "list.txt"), os.path.join(DATA, "images")), [], 2),
    "InfogainLoss": ("", [(2, 3), ("int", (2,), 3), ("pos", (1, 1, 3, 3))], 1),
    "InnerProduct": ("inner_product_param { num_output: 4 }", [(2, 3, 2)], 1),
    "Input": ("input_param { shape { dim: 2 dim: 3 } }", [], 1),
    "LRN": ("", [(2, 5, 4, 4)], 1),
    "LSTM": ("recurrent_param { num_output: 3 }", [(4, 2, 5), ("ones", (4, 2))], 1),
    "LSTMUnit": ("", [(1, 2, 3), (1, 2, 12), ("ones", (1, 2))], 2),
    "Log": ("", [("pos", (2, 3))], 1),
    "MVN": ("", [IMG], 1),
    "MemoryData": ("memory_data_param { batch_size: 2 channels: 3 height: 4 width: 4 }", [], 2),
    "MultinomialLogisticLoss": ("", [("pos", (2, 5)), ("int", (2,), 5)], 1),
    "PReLU": ("", [IMG], 1),
    "Parameter": ("parameter_param { shape { dim: 2 dim: 3 } }", [], 1),
    "Pooling": ("pooling_param { pool: MAX kernel_size: 3 stride: 2 }", [(2, 3, 7, 7)], 1),
    "Power": ("power_param { power: 2 }", [(2, 3)], 1),
    "Python": ('python_param { module: "pylayer_demo" layer: "ScaledIdentity" param_str: "{\\"scale\\": 2}" }',
               [(2, 3)], 1),
    "RNN": ("recurrent_param { num_output: 3 }", [(4, 2, 5), ("ones", (4, 2))], 1),
    "ReLU": ("", [(2, 3)], 1),
    "Reduction": ("", [(2, 3, 4)], 1),
    "Reshape": ("reshape_param { shape { dim: 0 dim: -1 } }", [(2, 3, 4)], 1),
    "SPP": ("spp_param { pyramid_height: 2 }", [(2, 3, 8, 8)], 1),
    "Scale": ("scale_param { bias_term: true }", [(2, 3, 4)], 1),
    "Sigmoid": ("", [(2, 3)], 1),
    "SigmoidCrossEntropyLoss": ("", [(2, 3), ("int", (2, 3), 2)], 1),
    "Silence": ("", [(2, 3)], 0),
    "Slice": ("", [(2, 6)], 2),
    "Softmax": ("", [(2, 5)], 1),
    "SoftmaxWithLoss": ("", [(2, 5), ("int", (2,), 5)], 1),
    "Split": ("", [(2, 3)], 2),
    "Swish": ("", [(2, 3)], 1),
    "TanH": ("", [(2, 3)], 1),
    "Threshold": ("", [(2, 3)], 1),
    "Tile": ("tile_param { tiles: 2 }", [(2, 3)], 1),
    "WindowData": ('window_data_param { source: "{tmp}/windows.txt" batch_size: 2 fg_fraction: 0.5 } '
                   'transform_param { crop_size: 6 }', [], 2),
}


# The fork families (issue #15) are checked layer by layer against OpenCV DNN and closed forms in
# tests/test_layers_forks.py; their MINIMAL entries are not written yet.
FORK_FAMILIES = ("ssd", "ssd_detection", "mobilenet", "segnet", "pspnet", "rcnn", "senet")


def builtin_types():
    return sorted(t for t in layer_type_list() if layer_class(t).__module__.startswith(BUILTIN_PREFIX)
                  and layer_class(t).__module__.rpartition(".")[2] not in FORK_FAMILIES)


def test_every_builtin_type_has_an_entry():
    types = builtin_types()
    assert len(types) >= 60
    missing = sorted(set(types) - set(MINIMAL))
    assert not missing, f"registered built-in layer types without a MINIMAL entry: {missing}"
    assert not sorted(set(MINIMAL) - set(types)), "MINIMAL entries for types that are not registered"


def _files(tmp):
    """The input files of the data layers that read from disk (HDF5Data, WindowData)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp / "a.h5", "w") as f:
        f["t0"] = np.arange(30, dtype=np.float32).reshape(3, 5, 2)   # datasets named after the tops
        f["t1"] = np.arange(3, dtype=np.float32)
    (tmp / "h5list.txt").write_text(str(tmp / "a.h5") + "\n")
    img = os.path.join(DATA, "images", "img_0.png")   # 19 x 23, 3 channels
    (tmp / "windows.txt").write_text(f"# 0\n{img}\n3 19 23\n2\n1 0.9 2 3 12 14\n0 0.1 0 0 8 9\n")


def _bottom(spec, gen):
    if isinstance(spec[0], str):
        kind, shape = spec[0], spec[1]
        if kind == "int":
            return torch.randint(0, spec[2], shape, generator=gen).float()
        if kind == "pos":
            return torch.rand(shape, generator=gen) + 0.1
        return torch.ones(shape)
    return torch.randn(spec, generator=gen)


def _minimal_lp(type_name, tmp):
    text, bottoms, n_top = MINIMAL[type_name]
    lp = caffe_pb2.LayerParameter(name="l", type=type_name)
    text_format.Merge(text.replace("{tmp}", str(tmp)), lp)
    lp.bottom.extend(f"b{i}" for i in range(len(bottoms)))
    lp.top.extend(f"t{i}" for i in range(n_top))
    return lp, bottoms


@pytest.mark.parametrize("type_name", sorted(MINIMAL))
def test_minimal_layer_tops_match_forward(type_name, tmp_path):
    from recaffe.netspec.net.layers import python as pylayer
    _files(tmp_path)
    lp, specs = _minimal_lp(type_name, tmp_path)
    gen = torch.Generator().manual_seed(3)
    bottoms = [_bottom(s, gen) for s in specs]
    cls = layer_class(type_name)
    pylayer.allow_python_layers(True)
    try:
        layer = cls(lp, [tuple(b.shape) for b in bottoms], "TEST").apply_fillers()
    finally:
        pylayer.allow_python_layers(None)
    assert len(layer.top_shapes) == len(lp.top)
    want = cls.blob_count(lp)
    assert want is None or want == len(layer.blobs), (want, len(layer.blobs))
    assert len(layer.blob_fillers) == len(layer.blobs)
    if type_name == "MemoryData":
        layer.set_input_arrays(np.zeros((4, 3, 4, 4), np.float32), np.zeros(4, np.float32))
    if layer.feeds_inputs:   # Input: the Net hands it tensors of the declared shapes
        bottoms = [torch.randn(s, generator=gen) for s in layer.top_shapes]
    if hasattr(layer, "num_workers"):
        layer.num_workers = 0
    try:
        tops = layer(*bottoms)
    finally:
        if hasattr(layer, "close"):
            layer.close()
    assert [tuple(t.shape) for t in tops] == [tuple(s) for s in layer.top_shapes]


# -- the parameter message handed to setup(p) ----------------------------------------------------------
@pytest.mark.parametrize("type_name,field", [
    ("InnerProduct", "inner_product_param"), ("ReLU", "relu_param"), ("PReLU", "prelu_param"),
    ("HDF5Data", "hdf5_data_param"), ("TanH", "tanh_param"), ("ArgMax", "argmax_param"),
    ("BatchNorm", "batch_norm_param"), ("Split", None), ("AbsVal", None), ("Square", None)])
def test_param_field_from_the_type_name(type_name, field):
    assert param_field_for_type(type_name) == field


@pytest.mark.parametrize("type_name,field", [
    ("Deconvolution", "convolution_param"), ("Im2col", "convolution_param"), ("LSTM", "recurrent_param"),
    ("RNN", "recurrent_param"), ("SoftmaxWithLoss", "softmax_param"), ("Convolution", "convolution_param"),
    ("SigmoidCrossEntropyLoss", None)])
def test_param_field_of_builtin_classes(type_name, field):
    assert layer_class(type_name).param_field_name(type_name) == field


def test_setup_receives_the_message_or_none():
    seen = []

    class _Probe(Layer):
        def setup(self, p):
            seen.append(p)
            self.top_shapes = [self.bottom_shapes[0]]

    class _Probe2(_Probe):
        param_field = "power_param"

    lp = caffe_pb2.LayerParameter(name="p", type="_NoSuchParam", bottom=["x"], top=["y"])
    lp.power_param.power = 3
    _Probe(lp, [(2,)])
    _Probe2(lp, [(2,)])
    assert seen[0] is None and seen[1].power == 3


# -- registration ---------------------------------------------------------------------------------------
@pytest.fixture
def scratch_types():
    names = []
    yield names
    for n in names:
        registry._REGISTRY.pop(n, None)


def test_second_registration_is_refused(scratch_types):
    scratch_types.append("_TRegOnce")

    @register("_TRegOnce")
    class First(Layer):
        pass

    with pytest.raises(NetError, match=r"layer type '_TRegOnce' is already registered to .*First; cannot "
                                       r"register .*Second for it too \(pass replace=True to replace it\)"):
        @register("_TRegOnce")
        class Second(Layer):
            pass
    assert layer_class("_TRegOnce") is First

    @register("_TRegOnce", replace=True)
    class Third(Layer):
        pass
    assert layer_class("_TRegOnce") is Third


def test_builtin_type_cannot_be_shadowed_silently():
    with pytest.raises(NetError, match="'ReLU' is already registered"):
        @register("ReLU")
        class ReLU(Layer):
            pass
    assert layer_class("ReLU").__module__ == BUILTIN_PREFIX + "neuron"


def test_rerunning_the_same_definition_replaces_it(scratch_types):
    """A notebook cell or module reload defines the same class again: no error, the new one wins."""
    scratch_types.append("_TRegRerun")
    made = []
    for _ in range(2):
        @register("_TRegRerun")
        class Rerun(Layer):
            pass
        made.append(Rerun)
    assert made[0] is not made[1] and layer_class("_TRegRerun") is made[1]


def test_register_needs_type_names():
    with pytest.raises(NetError, match="one or more non-empty layer type names"):
        register()


def test_family_modules_are_discovered():
    """Every module of the layers package is imported by the first registry query (no list to edit)."""
    layer_type_list()
    package = importlib.import_module("recaffe.netspec.net.layers")
    names = [m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
    assert {"vision", "neuron", "data", "python", "window_data"} <= set(names)
    assert [n for n in names if f"{BUILTIN_PREFIX}{n}" not in sys.modules] == []
    assert {layer_class(t).__module__ for t in builtin_types()} <= {BUILTIN_PREFIX + n for n in names}
