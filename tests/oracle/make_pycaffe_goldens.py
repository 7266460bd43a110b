"""Goldens for the pycaffe surface of recaffe (tests/test_pycaffe_*.py), made inside real pycaffe:

    ../shared/oracle/caffe-run python3 tests/oracle/make_pycaffe_goldens.py [SECTION...]

Sections (default: all) write into tests/golden/pycaffe/:
  api        api.json: pycaffe's public names, by module and class (dir() of each, imports of other
             packages and modules left out), and the submodules `import caffe.<name>` finds;
             draw.json: caffe.draw's label helpers on every layer of draw_layers.prototxt
  coord_map  fcn.<name>.prototxt: str(message) of each net of tests/pycaffe_scripts/fcn.py (built with
             caffe.coord_map.crop); coord_maps.json: each maps() case as [axis, scale list, shift list] or
             {"raises": exception class name}
  io         io.npz (each io_cases.py result, dtype kept) and io.json ({"raises": name} for the failures)
  backward   backward.npz, dream.npz, pylayer.npz, solver.npz from the scripts of tests/pycaffe_scripts/
             (see each script's docstring for the keys)
"""
import importlib.util
import json
import os
import sys
import tempfile
import types

import numpy as np

sys.modules.setdefault("pydot", types.ModuleType("pydot"))   # caffe.draw imports pydot; only its names are listed
import caffe  # noqa: E402
import caffe.classifier  # noqa: E402,F401
import caffe.coord_map  # noqa: E402
import caffe.detector  # noqa: E402,F401
import caffe.draw  # noqa: E402,F401
import caffe.io  # noqa: E402,F401
import caffe.net_spec  # noqa: E402,F401
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "tests", "pycaffe_scripts")
OUT = os.path.join(ROOT, "tests", "golden", "pycaffe")


def load(stem):
    spec = importlib.util.spec_from_file_location("pycaffe_script_" + stem, os.path.join(SCRIPTS, stem + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _own(obj):
    """A module attribute that is pycaffe's own (not a module, not another package's function/class)."""
    if isinstance(obj, types.ModuleType):
        return False
    mod = getattr(obj, "__module__", None)
    return mod is None or not isinstance(mod, str) or mod.startswith("caffe")


def api():
    tiny = tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False)
    tiny.write("input: 'data' input_shape { dim: 1 dim: 1 }\n"
               "layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip' inner_product_param { num_output: 1 } }\n")
    tiny.close()
    net = caffe.Net(tiny.name, caffe.TEST)
    modules = {m.__name__: m for m in (caffe, caffe.io, caffe.net_spec, caffe.draw, caffe.classifier,
                                       caffe.detector, caffe.coord_map)}
    classes = {"caffe.Net": caffe.Net, "caffe.Blob": type(net.blobs["data"]), "caffe.Layer": caffe.Layer,
               "caffe.SGDSolver": caffe.SGDSolver, "caffe.Timer": caffe.Timer, "caffe.NCCL": caffe.NCCL,
               "caffe.io.Transformer": caffe.io.Transformer, "caffe.net_spec.NetSpec": caffe.net_spec.NetSpec,
               "caffe.net_spec.Top": caffe.net_spec.Top, "caffe.net_spec.Function": caffe.net_spec.Function,
               "caffe.Classifier": caffe.Classifier, "caffe.Detector": caffe.Detector}
    out = {"modules": {}, "classes": {}, "submodules": sorted(
        n for n, v in vars(caffe).items() if isinstance(v, types.ModuleType) and not n.startswith("_"))}
    for name, mod in modules.items():
        out["modules"][name] = sorted(n for n, v in vars(mod).items() if not n.startswith("_") and _own(v))
    for name, cls in classes.items():
        out["classes"][name] = sorted(n for n in dir(cls) if not n.startswith("_"))
    os.unlink(tiny.name)
    with open(os.path.join(OUT, "api.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    draw = caffe.draw
    net = caffe_pb2.NetParameter()
    with open(os.path.join(SCRIPTS, "draw_layers.prototxt")) as f:
        text_format.Merge(f.read(), net)
    labels = {"pooling_types": {str(k): v for k, v in draw.get_pooling_types_dict().items()}, "layers": {}}
    for layer in net.layer:
        entry = {"edge": draw.get_edge_label(layer), "color": draw.choose_color_by_layertype(layer.type)}
        for rankdir in ("LR", "TB", "BT"):
            for lrm in (False, True):
                try:
                    entry["label_%s_%d" % (rankdir, lrm)] = draw.get_layer_label(layer, rankdir, display_lrm=lrm)
                except Exception as e:
                    entry["label_%s_%d" % (rankdir, lrm)] = {"raises": type(e).__name__}
        try:
            entry["lr_mult"] = list(draw.get_layer_lr_mult(layer))
        except Exception as e:
            entry["lr_mult"] = {"raises": type(e).__name__}
        labels["layers"][layer.name] = entry
    with open(os.path.join(OUT, "draw.json"), "w") as f:
        json.dump(labels, f, indent=1, sort_keys=True)


def _jsonable(value):
    if isinstance(value, caffe.net_spec.Top):
        return {"proto": str(value.to_proto())}
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def coord_map():
    fcn = load("fcn")
    for name, msg in fcn.build(caffe.layers, caffe.params, caffe.NetSpec, caffe.coord_map).items():
        with open(os.path.join(OUT, "fcn.%s.prototxt" % name), "w") as f:
            f.write(str(msg))
    results = {}
    for name, run in fcn.maps(caffe.layers, caffe.params, caffe.NetSpec, caffe.coord_map).items():
        try:
            results[name] = _jsonable(run())
        except Exception as e:
            results[name] = {"raises": type(e).__name__}
    with open(os.path.join(OUT, "coord_maps.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)


def io():
    arrays, raised = {}, {}
    for name, run in load("io_cases").cases(caffe, caffe_pb2).items():
        try:
            arrays[name] = np.asarray(run())
        except Exception as e:
            raised[name] = {"raises": type(e).__name__}
    np.savez(os.path.join(OUT, "io.npz"), **arrays)
    with open(os.path.join(OUT, "io.json"), "w") as f:
        json.dump(raised, f, indent=1, sort_keys=True)


def backward():
    for stem in ("backward", "dream", "pylayer", "solver"):
        path = os.path.join(SCRIPTS, stem + ".py")
        if not os.path.exists(path):
            continue
        with tempfile.TemporaryDirectory() as work:
            result = load(stem).run(caffe, work)
        np.savez(os.path.join(OUT, stem + ".npz"), **{k: np.asarray(v) for k, v in result.items()})


SECTIONS = {"api": api, "coord_map": coord_map, "io": io, "backward": backward}


def main(argv):
    os.makedirs(OUT, exist_ok=True)
    for name in argv or list(SECTIONS):
        SECTIONS[name]()
        print("made", name)


if __name__ == "__main__":
    main(sys.argv[1:])
