"""pycaffe's public surface against recaffe's, and the pieces of it that compute something: caffe.io's
proto helpers, caffe.coord_map (with the FCN-style nets FCN's net.py files write) and caffe.draw's labels.

Goldens: tests/golden/pycaffe/ from tests/oracle/make_pycaffe_goldens.py inside real pycaffe (api.json:
dir() of each pycaffe module and class; io.npz/io.json, coord_maps.json, fcn.*.prototxt, draw.json: what
pycaffe returned or raised for the shared scripts of tests/pycaffe_scripts/).
"""
import importlib
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import recaffe
import recaffe.classifier
import recaffe.coord_map
import recaffe.detector
import recaffe.draw
import recaffe.io
import recaffe.net_spec
from recaffe._refused import REFUSED, NotProvidedError, message
from recaffe.netspec.spec import to_prototxt
from recaffe.protos import caffe_pb2
from recaffe.protos.io import read_net

from pycaffe_text import pycaffe_str, pycaffe_text

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(HERE, "golden", "pycaffe")
SCRIPTS = os.path.join(HERE, "pycaffe_scripts")


def _json(name):
    with open(os.path.join(GOLDEN, name)) as f:
        return json.load(f)


def _script(stem):
    spec = importlib.util.spec_from_file_location("pycaffe_script_" + stem, os.path.join(SCRIPTS, stem + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


API = _json("api.json")
TINY = ("input: 'data' input_shape { dim: 1 dim: 3 dim: 4 dim: 4 }\n"
        "layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip' inner_product_param { num_output: 2 } }\n")


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    """One object of each pycaffe class recaffe provides, as a script would hold it."""
    d = tmp_path_factory.mktemp("api")
    net_file, weights = d / "tiny.prototxt", d / "tiny.caffemodel"
    net_file.write_text(TINY)
    net = recaffe.Net(str(net_file), recaffe.TEST)
    net.save(str(weights))
    solver_file = d / "solver.prototxt"
    solver_file.write_text(f"net: '{net_file}' base_lr: 0.1 lr_policy: 'fixed' display: 0 snapshot_prefix: '{d}/s'\n")
    n = recaffe.NetSpec()
    n.data = recaffe.layers.Input(shape=dict(dim=[1, 2]))
    return {
        "caffe.Net": net, "caffe.Blob": net.blobs["data"], "caffe.Layer": recaffe.Layer(),
        "caffe.SGDSolver": recaffe.SGDSolver(str(solver_file)), "caffe.Timer": recaffe.Timer(),
        "caffe.NCCL": recaffe.NCCL, "caffe.io.Transformer": recaffe.io.Transformer({"data": (1, 3, 4, 4)}),
        "caffe.net_spec.NetSpec": n, "caffe.net_spec.Top": n.data, "caffe.net_spec.Function": n.data.fn,
        "caffe.Classifier": recaffe.Classifier(str(net_file), str(weights)),
        "caffe.Detector": recaffe.Detector(str(net_file), str(weights)),
    }


def test_every_pycaffe_submodule_imports():
    assert API["submodules"] == ["classifier", "coord_map", "detector", "draw", "io", "net_spec", "proto", "pycaffe"]
    for sub in API["submodules"]:
        importlib.import_module("recaffe." + sub)


def test_legacy_import_caffe_finds_the_submodules(tmp_path):
    script = tmp_path / "imports.py"
    script.write_text("import caffe, caffe.coord_map, caffe.pycaffe, caffe.detector, caffe.draw\n"
                      "from caffe.coord_map import crop, coord_map_from_to\n"
                      "import recaffe\nprint(caffe.coord_map is recaffe.coord_map, caffe.pycaffe.Net is recaffe.Net)\n")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "pycaffe.py"), str(script)], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("module", sorted(API["modules"]))
def test_module_names_present(module):
    mod = importlib.import_module("re" + module)
    missing = [n for n in API["modules"][module] if not hasattr(mod, n)]
    assert not missing, f"{module} lacks {missing}"


@pytest.mark.parametrize("cls", sorted(API["classes"]))
def test_class_names_present(cls, instances):
    obj = instances[cls]
    missing = [n for n in API["classes"][cls] if not hasattr(obj, n)]
    assert not missing, f"{cls} lacks {missing}"


def test_refused_names_say_what_to_use_instead():
    """The only pycaffe names recaffe does not implement: they exist, and using one raises one line
    naming the replacement."""
    assert sorted(REFUSED) == ["caffe.NCCL", "caffe.draw.get_pydot_graph"]
    uses = {"caffe.NCCL": lambda: recaffe.NCCL(object(), "uid"),
            "caffe.draw.get_pydot_graph": lambda: recaffe.draw.get_pydot_graph(caffe_pb2.NetParameter(), "LR")}
    for name, use in uses.items():
        with pytest.raises(NotProvidedError) as e:
            use()
        text = str(e.value)
        assert text == message(name) and "\n" not in text and "; use " in text and name in text
    assert recaffe.has_nccl() is False


def test_module_level_functions_behave():
    t = recaffe.Timer()
    assert t.ms == 0.0
    t.start()
    t.stop()
    assert t.ms >= 0.0 and t.ms == t.ms          # stopped: a fixed reading
    recaffe.set_solver_count(4)
    recaffe.set_solver_rank(2)
    try:
        assert (recaffe.solver_count(), recaffe.solver_rank()) == (4, 2)
    finally:
        recaffe.set_solver_count(1)
        recaffe.set_solver_rank(0)
    recaffe.set_multiprocess(True)
    recaffe.log("a line from a pycaffe script")
    assert isinstance(recaffe.net_spec.layers, recaffe.net_spec.Layers)
    assert isinstance(recaffe.net_spec.params, recaffe.net_spec.Parameters)


# ---------------------------------------------------------------------------------------------- caffe.io

IO = _json("io.json")


@pytest.fixture(scope="module")
def io_golden():
    with np.load(os.path.join(GOLDEN, "io.npz")) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("case", sorted(_script("io_cases").cases(recaffe, caffe_pb2)))
def test_io_helpers_match_pycaffe(case, io_golden):
    run = _script("io_cases").cases(recaffe, caffe_pb2)[case]
    if case in IO:
        want = IO[case]["raises"]
        with pytest.raises(Exception) as e:
            run()
        assert want in [c.__name__ for c in type(e.value).__mro__] and "\n" not in str(e.value)
        return
    got, want = np.asarray(run()), io_golden[case]
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)


# ----------------------------------------------------------------------------------------- coord_map

def _as_json(value):
    if isinstance(value, recaffe.net_spec.Top):
        return {"proto": to_prototxt(value.to_proto())}
    if isinstance(value, (tuple, list)):
        return [_as_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


MAPS = _json("coord_maps.json")


@pytest.mark.parametrize("case", sorted(MAPS))
def test_coord_map_matches_pycaffe(case):
    L, P, NS = recaffe.layers, recaffe.params, recaffe.NetSpec
    run = _script("fcn").maps(L, P, NS, recaffe.coord_map)[case]
    want = MAPS[case]
    if isinstance(want, dict) and "raises" in want:
        with pytest.raises(Exception) as e:
            run()
        names = [c.__name__ for c in type(e.value).__mro__]
        assert want["raises"] in names and "\n" not in str(e.value), (names, str(e.value))
        return
    got = _as_json(run())
    if isinstance(want, dict):           # a Crop layer: pycaffe's text of its net
        assert got["proto"] == pycaffe_text(want["proto"])
        return
    assert got == want


@pytest.mark.parametrize("name", ["fcn8s_train", "fcn8s_val", "fcn32s_deploy"])
def test_fcn_netspec_with_crop_is_pycaffes_prototxt(name, tmp_path):
    """FCN's way of writing nets (coord_map.crop between score maps) gives pycaffe's prototxt, byte for
    byte, through to_prototxt and through a script's str(); the deploy net also builds and runs."""
    built = _script("fcn").build(recaffe.layers, recaffe.params, recaffe.NetSpec, recaffe.coord_map)
    with open(os.path.join(GOLDEN, f"fcn.{name}.prototxt")) as f:
        golden = f.read()
    assert to_prototxt(built[name]) == pycaffe_text(golden)
    assert str(built[name]) == pycaffe_str(golden)
    if name == "fcn32s_deploy":
        net = recaffe.Net(read_net(to_prototxt(built[name]).replace("dim: 500", "dim: 64")), recaffe.TEST)
        out = net.forward()["score"]
        assert out.shape == (1, 5, 64, 64)


# ---------------------------------------------------------------------------------------------- draw

DRAW = _json("draw.json")


def test_draw_label_helpers_match_pycaffe():
    net = read_net(os.path.join(SCRIPTS, "draw_layers.prototxt"))
    d = recaffe.draw
    assert {str(k): v for k, v in d.get_pooling_types_dict().items()} == DRAW["pooling_types"]
    assert sorted(l.name for l in net.layer) == sorted(DRAW["layers"])
    for layer in net.layer:
        want = DRAW["layers"][layer.name]
        assert d.get_edge_label(layer) == want["edge"], layer.name
        assert d.choose_color_by_layertype(layer.type) == want["color"], layer.name
        for key, label in want.items():
            if not key.startswith("label_"):
                continue
            _, rankdir, lrm = key.split("_")
            if isinstance(label, dict):
                with pytest.raises(ValueError):
                    d.get_layer_label(layer, rankdir, display_lrm=bool(int(lrm)))
            else:
                assert d.get_layer_label(layer, rankdir, display_lrm=bool(int(lrm))) == label, (layer.name, key)
        if isinstance(want["lr_mult"], dict):
            with pytest.raises(ValueError):
                d.get_layer_lr_mult(layer)
        else:
            assert list(d.get_layer_lr_mult(layer)) == want["lr_mult"], layer.name
