"""NetSpec DSL, prototxt printing, solver builder and the notebook model generators against pycaffe goldens.

Goldens: tests/golden/dsl/, made by tests/oracle/make_dsl_goldens.py running tests/dsl_scripts/*.py in real
pycaffe (protobuf 3.12). Texts are compared byte for byte with pycaffe's text on the protobuf this project
installs: the golden message printed by our protobuf's text_format (tests/pycaffe_text.py says why that is
pycaffe's text and not our own printer's).
"""
import glob
import importlib.util
import json
import os
import re

import numpy as np
import pytest
from google.protobuf import text_format

from recaffe.models import caffenet as cn
from recaffe.models import cifar10
from recaffe.models.lenet import lenet
from recaffe.netspec import NetSpec, layers as L, params as P, to_proto
from recaffe.netspec.spec import SolverSpec, solver, to_prototxt, write
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import NetError, SolverError
from recaffe.protos.printer import message_to_text

from pycaffe_text import pycaffe_str, pycaffe_text

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "dsl")
SCRIPTS = os.path.join(HERE, "dsl_scripts")


def _load(stem):
    spec = importlib.util.spec_from_file_location("dsl_" + stem, os.path.join(SCRIPTS, stem + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _golden(name):
    with open(os.path.join(GOLDEN, name + ".prototxt")) as f:
        return f.read()


def assert_same_text(ours, theirs):
    """``ours`` is byte for byte pycaffe's text of the golden ``theirs`` on the installed protobuf."""
    want = pycaffe_text(theirs)
    if ours != want:
        a, b = ours.splitlines(), want.splitlines()
        bad = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        raise AssertionError(f"line {bad + 1}: {a[bad] if bad < len(a) else '<end>'!r} vs pycaffe "
                             f"{b[bad] if bad < len(b) else '<end>'!r}")


def _build(stem):
    return _load(stem).build(L, P, NetSpec, to_proto, caffe_pb2)


GOLDEN_NAMES = sorted(os.path.basename(p)[:-len(".prototxt")] for p in glob.glob(os.path.join(GOLDEN, "*.prototxt"))
                      if not os.path.basename(p).startswith("bvlc."))


def test_goldens_present():
    scripts = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(SCRIPTS, "*.py"))}
    assert {n.split(".")[0] for n in GOLDEN_NAMES} == scripts - {"misuse"}
    assert len(GOLDEN_NAMES) >= 20
    assert len(glob.glob(os.path.join(GOLDEN, "bvlc.*.prototxt"))) == 3


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_script_text_matches_pycaffe(name):
    stem, entry = name.split(".", 1)
    built = _build(stem)
    assert set(built) == {n.split(".", 1)[1] for n in GOLDEN_NAMES if n.startswith(stem + ".")}
    assert_same_text(to_prototxt(built[entry]), _golden(name))


# ------------------------------------------------------------- model generators vs the notebooks' code

NOTEBOOK = {
    "imagenet_deploy": lambda: cn.caffenet(data=L.DummyData(shape=dict(dim=[1, 3, 227, 227])), train=False),
    "imagenet_deploy_learn_all": lambda: cn.imagenet_deploy(learn_all=True),
    "untrained_style": lambda: cn.style_net(train=False, subset="train"),
    "style_train": lambda: cn.style_net(train=True),
    "style_test": lambda: cn.style_net(train=False),
    "style_train_learn_all": lambda: cn.style_net(train=True, learn_all=True),
    "style_test_learn_all": lambda: cn.style_net(train=False, learn_all=True),
    "solver_train": lambda: cn.solver("/tmp/train.prototxt"),
    "solver_train_test": lambda: cn.solver("/tmp/train.prototxt", "/tmp/test.prototxt", base_lr=0.0001),
}


@pytest.mark.parametrize("entry", sorted(NOTEBOOK))
def test_models_caffenet_matches_notebook(entry):
    assert_same_text(to_prototxt(NOTEBOOK[entry]()), _golden("finetune_notebook." + entry))


@pytest.mark.parametrize("entry,args", [("train", ("mnist/mnist_train_lmdb", 64)),
                                        ("test", ("mnist/mnist_test_lmdb", 100))])
def test_models_lenet_matches_notebook(entry, args):
    assert_same_text(to_prototxt(lenet(*args)), _golden("lenet_notebook." + entry))


@pytest.mark.parametrize("stem,make", [("cifar10_quick_train_test", cifar10.cifar10_quick),
                                       ("cifar10_quick", cifar10.cifar10_quick_deploy),
                                       ("cifar10_quick_solver", cifar10.cifar10_quick_solver)])
def test_models_cifar10_matches_bvlc_files(stem, make):
    assert_same_text(to_prototxt(make()), _golden("bvlc." + stem))


def test_models_write_to_path(tmp_path):
    p = cn.style_net(train=True, path=tmp_path / "train.prototxt")
    assert_same_text(open(p).read(), _golden("finetune_notebook.style_train"))
    s = cn.solver(str(p), path=tmp_path / "solver.prototxt")
    assert text_format.Parse(open(s).read(), caffe_pb2.SolverParameter()).train_net == str(p)


def test_models_write_style_files(tmp_path):
    paths = cn.write_style_files(tmp_path / "style", learn_all=True, base_lr=0.0001)
    assert_same_text(open(paths["train"]).read(), _golden("finetune_notebook.style_train_learn_all"))
    assert_same_text(open(paths["test"]).read(), _golden("finetune_notebook.style_test_learn_all"))
    assert_same_text(open(paths["deploy"]).read(), _golden("finetune_notebook.imagenet_deploy_learn_all"))
    want = _golden("finetune_notebook.solver_train_test").replace("/tmp/train.prototxt", paths["train"])
    assert_same_text(open(paths["solver"]).read(), want.replace("/tmp/test.prototxt", paths["test"]))


@pytest.mark.parametrize("name", sorted(_load("solvers").SOLVERS))
def test_solver_builder_matches_pycaffe(name):
    fields = _load("solvers").SOLVERS[name]
    assert_same_text(to_prototxt(solver(**fields)), _golden("solvers." + name))
    assert_same_text(str(SolverSpec(**fields)), _golden("solvers." + name))


# ------------------------------------------------------------- printing

def test_text_is_text_format_spelling():
    """to_prototxt is protobuf's text_format on the installed protobuf: the issue's examples, integral floats
    with '.0', text_format's 6-then-9-digit floats; and every value reads back to the same float32."""
    lenet_text = to_prototxt(lenet("x", 1))
    assert "    scale: 0.003921569\n" in lenet_text
    assert "    alpha: 0.0001\n" in to_prototxt(cn.style_net())
    assert "    mean_value: 104.0\n" in to_prototxt(_build("features")["named"])
    assert "base_lr: 0.001\n" in to_prototxt(cn.solver("t"))
    for stem in ("features", "finetune_notebook", "solvers"):
        for msg in _build(stem).values():
            text = to_prototxt(msg)
            assert text == text_format.MessageToString(msg)
            assert text_format.Parse(text, type(msg)()) == msg


def test_shortest_float32_edges():
    from recaffe.netspec.spec import shortest_float32
    f32 = lambda x: float(np.float32(x))
    cases = {f32(0.01): "0.01", f32(1 / 255): "0.003921569", 104.0: "104.0", f32(1e-5): "1e-05",
             f32(3e-42): "3e-42", f32(1e-45): "1e-45", -0.0: "-0.0", float("inf"): "inf", float("-inf"): "-inf",
             f32(3.4028234663852886e38): "3.4028235e+38", f32(123456789): "123456790.0", f32(0.9): "0.9"}
    for value, text in cases.items():
        assert shortest_float32(value) == text and f32(float(text)) == value
    assert shortest_float32(float("nan")) == "nan"
    rng = np.random.default_rng(0)
    values = (rng.standard_normal(300) * 10.0 ** rng.integers(-44, 38, 300)).astype(np.float32)
    for x in values[np.isfinite(values)]:
        text = shortest_float32(float(x))
        assert np.float32(float(text)) == x
        assert len(text.replace("-", "").split("e")[0].replace(".", "").strip("0")) <= \
            len(np.format_float_scientific(x, unique=True).split("e")[0].replace("-", "").replace(".", "").strip("0"))


def test_strings_as_pycaffe_prints_them():
    """text_format's escaping on protobuf 7: quotes, backslashes and control characters escaped, non-ASCII
    as raw UTF-8 (protobuf 3.12 wrote octal escapes; both read back to the same bytes)."""
    msg = _build("features")["spellings"]
    text = to_prototxt(msg)
    assert 'source: "data/caf\u00e9 \\"list\\".txt"' in text
    assert 'root_folder: "a\\\\b\\tc\\n"' in text
    assert text_format.Parse(text, caffe_pb2.NetParameter()) == msg


def test_prototxt_printer_agrees_with_text_format_on_every_field_kind():
    """recaffe.protos.printer (the files Caffe's C++ tools write: upgraded nets, solver states): layout,
    ints, int64, bytes, strings, bools, enums, doubles as text_format prints them with as_utf8=False;
    floats equal as float32, and 3e-42 shorter than text_format's."""
    blob = caffe_pb2.BlobProto(num=1, double_data=[0.1, 1e-300], data=[0.1, 3e-42], shape=dict(dim=[2 ** 40]))
    datum = caffe_pb2.Datum(channels=1, data=b"\x00\xff\x10abc\"", float_data=[1.5], encoded=True)
    state = caffe_pb2.NetState(phase=caffe_pb2.TEST, stage=["\u00e9t\u00e9"])
    for msg in (blob, datum, state, _build("features")["net_fields"]):
        ours, theirs = message_to_text(msg).splitlines(), text_format.MessageToString(msg, as_utf8=False).splitlines()
        assert len(ours) == len(theirs)
        for x, y in zip(ours, theirs):
            if x != y:
                (kx, vx), (ky, vy) = x.split(": "), y.split(": ")
                assert kx == ky and np.float32(float(vx)) == np.float32(float(vy)), (x, y)
    assert "data: 3e-42\n" in message_to_text(blob) and "3.00018e-42" in text_format.MessageToString(blob)


def test_pycaffe_helpers():
    from recaffe.netspec.spec import assign_proto, param_name_dict
    names = param_name_dict()
    assert names["Convolution"] == "convolution" and names["Transformation"] == "transform"
    assert names["PReLU"] == "prelu" and names["HDF5Data"] == "hdf5_data" and names["Python"] == "python"
    layer = caffe_pb2.LayerParameter()
    assign_proto(layer, "include", dict(phase=1))
    assign_proto(layer, "param", [dict(lr_mult=1), dict(lr_mult=2)])
    assert layer.include[0].phase == caffe_pb2.TEST and [p.lr_mult for p in layer.param] == [1, 2]


def test_write_is_atomic_and_round_trips(tmp_path):
    target = tmp_path / "net.prototxt"
    target.write_text("old")
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2]))
    n.ip = L.InnerProduct(n.data, num_output=3, weight_filler=dict(type="gaussian", std=0.01))
    assert write(n, target) == str(target)
    assert os.listdir(tmp_path) == ["net.prototxt"]
    back = text_format.Parse(target.read_text(), caffe_pb2.NetParameter())
    assert back == n.to_proto() and back.layer[1].inner_product_param.weight_filler.std == np.float32(0.01)
    SolverSpec(base_lr=0.1, net=str(target)).write(tmp_path / "solver.prototxt")
    back = text_format.Parse((tmp_path / "solver.prototxt").read_text(), caffe_pb2.SolverParameter())
    assert back.base_lr == np.float32(0.1)
    with pytest.raises(OSError):
        write(n, tmp_path / "missing_dir" / "x.prototxt")
    assert sorted(os.listdir(tmp_path)) == ["net.prototxt", "solver.prototxt"]


# ------------------------------------------------------------- misuse

with open(os.path.join(GOLDEN, "errors.json")) as _f:
    ERRORS = json.load(_f)

# What our message must mention for each case pycaffe rejects.
MENTIONS = {
    "unknown_param": ["Convolution", "kernel_sz", "kernel_size", "num_output", "loss_weight"],
    "typo_in_filler": ["Convolution", "tpye", "FillerParameter", "variance_norm"],
    "deconv_flat_kwarg": ["Deconvolution", "num_output", "convolution_param", "<layer>_param"],
    "loss_flat_kwarg": ["SoftmaxWithLoss", "ignore_label", "LayerParameter"],
    "bad_enum_value": ["Pooling", "7", "MAX=0", "AVE=1", "STOCHASTIC=2"],
    "float_for_int": ["kernel_size", "2.5", "integer"],
    "int_for_string": ["type", "string"],
    "scalar_for_message": ["weight_filler", "dict", "FillerParameter"],
    "not_a_top": ["ReLU", "input 0", "not a Top", "int"],
    "unknown_layer_field": ["Silence", "bogus", "LayerParameter"],
}


# Cases whose error is also an instance of the class pycaffe raised (a legacy `except TypeError:` works).
SAME_CLASS_AS_PYCAFFE = {"not_a_top"}


@pytest.mark.parametrize("case", sorted(_load("misuse").cases(L, P, NetSpec, to_proto, caffe_pb2)))
def test_misuse_like_pycaffe_with_clear_errors(case):
    run = _load("misuse").cases(L, P, NetSpec, to_proto, caffe_pb2)[case]
    want = ERRORS["misuse." + case]
    if want["raises"] is None:
        assert_same_text(to_prototxt(run()), want["text"])
        return
    with pytest.raises(NetError) as e:
        run()
    msg = str(e.value)
    if case in SAME_CLASS_AS_PYCAFFE:
        assert want["raises"] in [c.__name__ for c in type(e.value).__mro__]
    assert "\n" not in msg
    for word in MENTIONS[case]:
        assert word in msg, f"{word!r} not in {msg!r}"


def test_error_raised_at_layer_call():
    x = L.Input(shape=dict(dim=[1]))
    with pytest.raises(NetError, match="kernel_sz"):
        L.Convolution(x, kernel_sz=3)          # not deferred to to_proto
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(NetError, match="ntop"):
            L.Slice(x, ntop=bad)
    assert len(L.Slice(x, ntop=np.int64(2))) == 2


def test_params_enums():
    assert (P.Pooling.MAX, P.Pooling.AVE, P.Pooling.STOCHASTIC) == (0, 1, 2)
    assert (P.Eltwise.PROD, P.Eltwise.SUM, P.Eltwise.MAX) == (0, 1, 2)
    assert P.Data.LMDB == 1 and P.Loss.VALID == 1 and P.Solver.GPU == 1
    with pytest.raises(NetError, match="MAX, AVE, STOCHASTIC"):
        P.Pooling.MAXX
    with pytest.raises(NetError, match="NoSuchParameter"):
        P.NoSuch.X
    assert not hasattr(P.Pooling, "MAXX") and hasattr(P.Pooling, "MAX")
    assert P.Pooling.PoolMethod.Name(1) == "AVE"


def test_enum_names_accepted_and_checked():
    x = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    by_name = to_prototxt(L.Pooling(x, pool="AVE", kernel_size=2))
    assert by_name == to_prototxt(L.Pooling(x, pool=P.Pooling.AVE, kernel_size=2)) and "pool: AVE" in by_name
    with pytest.raises(NetError, match="'AVG' is not a PoolingParameter.PoolMethod name; valid: MAX=0, AVE=1"):
        L.Pooling(x, pool="AVG")
    with pytest.raises(SolverError, match="valid: CPU=0, GPU=1"):
        solver(solver_mode="TPU")
    with pytest.raises(SolverError, match="base_lrr.*base_lr"):
        SolverSpec(base_lrr=0.1)


def test_netspec_naming_rules():
    n = NetSpec()
    n["data"] = L.Input(shape=dict(dim=[1, 4]))
    relu = L.ReLU(n.data, in_place=True)        # anonymous in-place layer: named after its own top
    n.fc = L.InnerProduct(relu, num_output=2)
    n.alias_a = n.fc
    n.alias_b = n.fc                            # last name wins
    layers = n.to_proto().layer
    assert [(l.name, list(l.bottom), list(l.top)) for l in layers] == [
        ("data", [], ["data"]), ("ReLU1", ["data"], ["data"]), ("alias_b", ["data"], ["alias_b"])]
    assert "fc" in n and n["fc"] is n.fc
    with pytest.raises(AttributeError, match="no top 'nope'"):
        n.nope
    with pytest.raises(NetError, match="ntop=2"):
        n.pair = L.Slice(n.data, ntop=2)


def test_deep_net_needs_no_recursion():
    n = NetSpec()
    x = n.data = L.Input(shape=dict(dim=[1, 1]))
    for _ in range(3000):
        x = L.ReLU(x)
    n.out = x
    layers = n.to_proto().layer
    assert len(layers) == 3001 and layers[1].name == "ReLU1" and layers[-1].name == "out"
    assert layers[-1].bottom[0] == "ReLU2999"


def test_solver_spec_assignment_replaces():
    s = SolverSpec(stepvalue=[1, 2], test_iter=5)
    s.stepvalue = [7]
    s.train_state = dict(stage=["a"])
    p = s.to_proto()
    assert list(p.stepvalue) == [7] and list(p.test_iter) == [5] and list(p.train_state.stage) == ["a"]
    n = NetSpec()
    n.x = L.Input(shape=dict(dim=[1]))
    assert solver(net_param=n).net_param == n.to_proto()
