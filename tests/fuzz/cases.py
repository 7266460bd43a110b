"""The cases of the bad-input suite. ``make_case(kind, rng, ctx, folder)`` writes the mutated input into
``folder`` (in the parent) and returns (description, a function the child runs). The child calls
recaffe's library entry points the way a user or a CLI would; anything but a RecaffeError escaping
is a traceback, judged by the harness.

Seeds: the zoo (models/zoo), the golden prototxts (tests/golden) and, when present, the corpus of
real projects (tests/locations.py: RECAFFE_CORPUS), shrunk once so a case builds in milliseconds: batch 1-2,
num_output capped at 16, data layers pointed at the small artifacts (tests/fuzz/artifacts.py), crops
cut to fit them. Work a user legitimately asks for (a solver's test_iter of a billion, a convolution of
10^11 multiply-adds) is not a hang: solver counts are clamped after mutation and a forward runs only
when its multiply-adds are estimated below ``MAX_FORWARD_OPS``.
"""
import glob
import os

from google.protobuf import text_format

import locations

from . import artifacts
from .mutate import image_header_size, mutate_bytes, mutate_message, mutate_text, print_message

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = locations.CORPUS
MAX_FORWARD_OPS = 3e9
CAP = 16

#: kind -> weight in a run
KINDS = {"net": 36, "solver": 8, "weights": 12, "state": 8, "lmdb": 8, "datum": 6, "hdf5": 6,
         "binaryproto": 4, "image": 8, "caffemodel_as_net": 2, "pickle": 2}


# -- seeds ---------------------------------------------------------------------------------------------
def seed_files(with_corpus=True):
    files = sorted(glob.glob(os.path.join(ROOT, "models", "zoo", "*", "*.prototxt")))
    files += sorted(glob.glob(os.path.join(ROOT, "tests", "golden", "**", "*.prototxt"), recursive=True))
    if with_corpus and os.path.isdir(CORPUS):
        files += sorted(glob.glob(os.path.join(CORPUS, "*", "*.prototxt")))
    return files


def _shrink_net(net, art):
    """Make a seed net cheap to build and run (in place); see the module docstring."""
    from recaffe.protos import caffe_pb2

    def shrink_shape(shape):
        dims = list(shape.dim)
        if dims:
            dims[0] = min(dims[0], 2)
            dims = [min(d, 256) for d in dims]
            del shape.dim[:]
            shape.dim.extend(dims)
    for s in net.input_shape:
        shrink_shape(s)
    if net.input_dim:
        dims = list(net.input_dim)
        for i in range(0, len(dims), 4):
            dims[i] = min(dims[i], 2)
        del net.input_dim[:]
        net.input_dim.extend(min(d, 256) for d in dims)
    for lp in net.layer:
        for s in lp.input_param.shape:
            shrink_shape(s)
        for s in lp.dummy_data_param.shape:
            shrink_shape(s)
        for p in (lp.convolution_param, lp.inner_product_param, lp.embed_param, lp.recurrent_param):
            if p.num_output > CAP:
                depthwise = getattr(p, "group", 1) > 1 and p.group == p.num_output
                p.num_output = CAP
                if hasattr(p, "group") and p.group > 1:
                    p.group = CAP if depthwise else (p.group if CAP % p.group == 0 else 1)
        tp = lp.transform_param
        if tp.crop_size > 256:
            tp.crop_size = 256
        if tp.mean_file:
            tp.mean_file = art["mean_seed"]
        if lp.type == "Data":
            lp.data_param.source = art["lmdb_seed"]
            lp.data_param.backend = caffe_pb2.DataParameter.LMDB
            lp.data_param.batch_size = min(lp.data_param.batch_size or 2, 2)
        elif lp.type == "ImageData":
            p = lp.image_data_param
            p.source, p.root_folder = art["list_seed"], ""
            p.new_height, p.new_width = min(p.new_height, 256), min(p.new_width, 256)
            p.batch_size = min(p.batch_size or 2, 2)
        elif lp.type == "HDF5Data":
            lp.hdf5_data_param.source = art["hdf5_list"]
            lp.hdf5_data_param.batch_size = min(lp.hdf5_data_param.batch_size or 2, 2)
        elif lp.type == "WindowData":
            p = lp.window_data_param
            p.source, p.root_folder, p.batch_size, p.crop_size = art["window"], "", 2, min(p.crop_size or 14, 14)
            p.mean_file = ""
        elif lp.type == "MemoryData":
            p = lp.memory_data_param
            p.batch_size, p.height, p.width = min(p.batch_size, 2), min(p.height, 64), min(p.width, 64)
    return net


def load_seeds(art, with_corpus=True):
    """({name: shrunk NetParameter text}, {name: SolverParameter}) of the seed files."""
    import warnings
    from recaffe.protos import io
    from recaffe.protos.errors import RecaffeError
    nets, solvers = {}, {}
    for path in seed_files(with_corpus):
        name = os.path.relpath(path, ROOT) if path.startswith(ROOT) else path
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                net = io.read_net(path, lenient=True)
            except RecaffeError:
                net = None
            if net is not None and len(net.layer):
                nets[name] = print_message(_shrink_net(net, art))
                continue
            try:
                solver = io.read_solver(path, lenient=True)
            except RecaffeError:
                continue
            if solver.base_lr or solver.lr_policy or solver.net or solver.train_net:
                solvers[name] = solver
    return nets, solvers


def _fit_solver(solver, art, folder):
    """A seed solver made runnable on the artifacts: its nets -> the small train net, counts small."""
    for f in ("net", "train_net", "net_param", "train_net_param"):
        solver.ClearField(f)
    del solver.test_net[:]
    del solver.test_net_param[:]
    solver.net = art["train_net"]
    solver.max_iter = min(solver.max_iter or 3, 3)
    solver.snapshot_prefix = os.path.join(folder, "snap")
    solver.display = min(solver.display, 1)
    return solver


def _clamp_solver(solver):
    """After mutation: counts a user may legitimately set high (not a hang when honoured) are capped."""
    while len(solver.test_iter) > 4:
        del solver.test_iter[-1]
    for i in range(len(solver.test_iter)):
        solver.test_iter[i] = max(-5, min(solver.test_iter[i], 3))
    solver.iter_size = min(solver.iter_size, 4)
    solver.average_loss = min(solver.average_loss, 1000)
    if solver.snapshot > 0:
        solver.snapshot = max(solver.snapshot, 1)


# -- what the child runs ---------------------------------------------------------------------------
def forward_ops(net):
    """Estimated multiply-adds of one forward (layers with weights: weight count x output positions)."""
    ops = 0.0
    for step in net.steps:
        layer = step.layer
        tops = [net.blob_shapes.get(t, ()) for t in step.tops]
        out = sum(_count(s) for s in tops)
        ops += 10 * (out + sum(_count(s) for s in layer.bottom_shapes))
        if len(layer.blobs) and tops and len(tops[0]) > 1:
            ops += layer.blobs[0].numel() * _count(tops[0]) / max(1, tops[0][1])
    return ops


def _count(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def run_net(path, phase="TEST", weights=None, passes=1, facade=False):
    """Build the net; forward (and backward in TRAIN when there is a loss) when affordable."""
    import torch
    from recaffe.netspec.net.net import Net
    if facade:
        import recaffe
        net = recaffe.Net(path, recaffe.TRAIN if phase == "TRAIN" else recaffe.TEST, weights=weights)
        if forward_ops(net.torch_net) < MAX_FORWARD_OPS:
            net.forward()
        return "facade"
    net = Net(path, phase=phase, weights=weights)
    try:
        if forward_ops(net) >= MAX_FORWARD_OPS:
            return "built (forward skipped: over the op budget)"
        for _ in range(passes):
            feed = {k: torch.randn(net.blob_shapes[k]) for k in net.inputs}
            out = net.forward(**feed)
            if phase == "TRAIN" and net.loss is not None and net.loss.requires_grad:
                net.backward()
        return f"ran {len(out)} output(s)"
    finally:
        for layer in net.layers:
            if hasattr(layer, "close"):
                layer.close()


def run_solver(path, restore=None, steps=2):
    from recaffe.solver.solver import Solver
    s = Solver(path)
    try:
        if restore:
            s.restore(restore)
        s.step(steps)
        s.snapshot()
    finally:
        for net in [s.net] + s.test_nets:
            for layer in net.layers:
                if hasattr(layer, "close"):
                    layer.close()
    return f"iter {s.iter}"


def run_data(db, mean_file=""):
    from recaffe.netspec.data.convert import compute_image_mean
    out = run_net(artifacts.data_net(db, batch=4, mean_file=mean_file), passes=2)
    mean, n = compute_image_mean(db, workers=1)
    return f"{out}; mean of {n}"


# -- case makers -------------------------------------------------------------------------------------
class Context:
    """What case makers share: the artifacts, the seeds, the layer types."""

    def __init__(self, art, with_corpus=True):
        from recaffe.netspec.net.layers import layer_type_list
        self.art = art
        self.nets, self.solvers = load_seeds(art, with_corpus)
        self.net_names, self.solver_names = sorted(self.nets), sorted(self.solvers)
        self.types = layer_type_list()


def _write(folder, name, data):
    return artifacts.write(os.path.join(folder, name), data)


def case_net(rng, ctx, folder):
    from recaffe.protos import caffe_pb2
    name = rng.choice(ctx.net_names)
    msg = text_format.Parse(ctx.nets[name], caffe_pb2.NetParameter())
    done = mutate_message(rng, msg, n=0 if rng.random() < 0.03 else None, types=ctx.types)
    text = print_message(msg)
    if rng.random() < 0.25:
        text, what = mutate_text(rng, text)
        done.append(what)
    path = _write(folder, "net.prototxt", text)
    phase = rng.choice(["TRAIN", "TEST"])
    facade = rng.random() < 0.1
    return f"net {name} {phase}: {'; '.join(done)}", lambda: run_net(path, phase, facade=facade)


def case_solver(rng, ctx, folder):
    from recaffe.protos import caffe_pb2
    name = rng.choice(ctx.solver_names)
    msg = caffe_pb2.SolverParameter()
    msg.CopyFrom(ctx.solvers[name])
    _fit_solver(msg, ctx.art, folder)
    done = mutate_message(rng, msg)
    _clamp_solver(msg)
    text = print_message(msg)
    if rng.random() < 0.2:
        text, what = mutate_text(rng, text)
        done.append(what)
    path = _write(folder, "solver.prototxt", text)
    return f"solver {name}: {'; '.join(done)}", lambda: run_solver(path)


def _mutated_file(rng, folder, src, name, protect=0):
    with open(src, "rb") as f:
        data, what = mutate_bytes(rng, f.read(), protect)
    return _write(folder, name, data), what


def case_weights(rng, ctx, folder):
    key = rng.choice(["caffemodel", "pth", "h5"])
    path, what = _mutated_file(rng, folder, ctx.art[key], os.path.basename(ctx.art[key]), protect=8)
    facade = rng.random() < 0.2
    return f"weights {key}: {what}", lambda: run_net(ctx.art["net"], "TEST", weights=path, facade=facade)


def case_state(rng, ctx, folder):
    ext = rng.choice(["", ".h5", ".pth"])
    src = ctx.art["state" + ext]
    path, what = _mutated_file(rng, folder, src, os.path.basename(src), protect=8)
    import shutil
    model = ctx.art["state_model" + ext]             # the learned_net beside the state, intact or not
    if rng.random() < 0.3:
        _mutated_file(rng, folder, model, os.path.basename(model), protect=8)
        what += " + its model mutated"
    else:
        shutil.copy(model, os.path.join(folder, os.path.basename(model)))
    solver = _write(folder, "solver.prototxt", artifacts.SOLVER.format(
        net=ctx.art["train_net"], max_iter=4, prefix=os.path.join(folder, "snap"), type="SGD"))
    return f"state{ext}: {what}", lambda: run_solver(solver, restore=path, steps=1)


def _copy_db(rng, folder, src):
    db = os.path.join(folder, "db")
    os.mkdir(db)
    path, what = _mutated_file(rng, folder, os.path.join(src, "data.mdb"), "db/data.mdb")
    return db, what


def case_lmdb(rng, ctx, folder):
    src = ctx.art[rng.choice(["lmdb", "lmdb_enc"])]
    db, what = _copy_db(rng, folder, src)
    return f"lmdb {os.path.basename(src)}: {what}", lambda: run_data(db)


def case_datum(rng, ctx, folder):
    from recaffe.protos import caffe_pb2
    encoded = rng.random() < 0.4
    values = artifacts.encoded_datums(4) if encoded else artifacts.raw_datums(4)
    i = rng.randrange(len(values))
    d = caffe_pb2.Datum.FromString(values[i])
    done = mutate_message(rng, d)
    value = d.SerializeToString()
    if rng.random() < 0.3:
        value, what = mutate_bytes(rng, value)
        done.append(what)
    values[i] = value
    db = artifacts.write_lmdb(os.path.join(folder, "db"), values)
    return f"datum {i} ({'encoded' if encoded else 'raw'}): {'; '.join(done)}", lambda: run_data(db)


def case_hdf5(rng, ctx, folder):
    import numpy as np
    path = os.path.join(folder, "data.h5")
    if rng.random() < 0.5:
        path, what = _mutated_file(rng, folder, ctx.art["hdf5"], "data.h5", protect=8)
    else:
        shapes = [(6, 3, 4, 4), (0, 3), (6,), (), (1, 1), (6, 0, 2), (3, 2, 2)]
        dtypes = ["f4", "f8", "i4", "u1", "S3", "b1", "c8"]
        shape, dtype = rng.choice(shapes), rng.choice(dtypes)
        data = np.zeros(shape, dtype)
        label = np.zeros(rng.choice([(6,), (5,), (0,), ()]), rng.choice(dtypes))
        artifacts.write_hdf5_data(path, data=data, label=label)
        what = f"data {shape} {dtype}, label {label.shape} {label.dtype}"
    lst = _write(folder, "list.txt", path + "\n")
    return f"hdf5: {what}", lambda: run_net(artifacts.hdf5_net(lst, batch=4), passes=3)


def case_binaryproto(rng, ctx, folder):
    path, what = _mutated_file(rng, folder, ctx.art["mean"], "mean.binaryproto")

    def run():
        from recaffe.netspec.data.meanfile import read_mean
        read_mean(path)
        return run_net(artifacts.data_net(ctx.art["lmdb"], batch=2, mean_file=path))
    return f"binaryproto: {what}", run


def case_image(rng, ctx, folder):
    src = ctx.art[rng.choice(["png", "jpg"])]
    with open(src, "rb") as f:
        data = f.read()
    got = image_header_size(rng, data) if rng.random() < 0.3 else None
    data, what = got if got else mutate_bytes(rng, data, protect=8)
    img = _write(folder, "img" + os.path.splitext(src)[1], data)
    lst = _write(folder, "list.txt", f"{img} 1\n")
    flags = rng.choice([{}, {"encoded": True}, {"resize_height": 8, "resize_width": 8}, {"gray": True}])

    def run():
        from recaffe.io import load_image
        from recaffe.netspec.data.convert import convert_imageset
        from recaffe.netspec.data.image import read_image
        read_image(img)
        load_image(img)
        convert_imageset("", lst, os.path.join(folder, "db"), workers=1, progress=False, **flags)
        return run_net(artifacts.image_data_net(lst, batch=2))
    return f"image {os.path.basename(src)} {flags}: {what}", run


def case_caffemodel_as_net(rng, ctx, folder):
    path, what = _mutated_file(rng, folder, ctx.art["caffemodel"], "w.caffemodel")

    def run():
        from recaffe.protos.io import read_net
        return f"{len(read_net(path).layer)} layers"
    return f"caffemodel read as a net: {what}", run


class _Evil:
    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def case_pickle(rng, ctx, folder):
    """A .pth whose pickle would create a file if its code ran: refused, and the file never appears."""
    import torch
    _Evil.marker = os.path.join(folder, "PWNED")
    kind = rng.choice(["weights", "state"])
    path = os.path.join(folder, "evil.pth" if kind == "weights" else "evil.solverstate.pth")
    torch.save({"conv1.0": _Evil()} if kind == "weights" else {"iter": 1, "history": [_Evil()]}, path)
    solver = _write(folder, "solver.prototxt", artifacts.SOLVER.format(
        net=ctx.art["train_net"], max_iter=4, prefix=os.path.join(folder, "snap"), type="SGD"))

    def run():
        try:
            return run_net(ctx.art["net"], weights=path) if kind == "weights" else run_solver(solver, restore=path)
        finally:
            if os.path.exists(_Evil.marker):
                raise AssertionError("a pickle in a .pth ran code")
    return f"pickle {kind}", run


MAKERS = {"net": case_net, "solver": case_solver, "weights": case_weights, "state": case_state,
          "lmdb": case_lmdb, "datum": case_datum, "hdf5": case_hdf5, "binaryproto": case_binaryproto,
          "image": case_image, "caffemodel_as_net": case_caffemodel_as_net, "pickle": case_pickle}


def make_case(kind, rng, ctx, folder):
    return MAKERS[kind](rng, ctx, folder)
