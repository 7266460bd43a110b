"""Data sharding for data-parallel training (layer.shard(rank, world)): rank r's local batch b is the
single-process stream's batch b * world + r -- same records, same crop/mirror plan, same shuffle --
so the ranks' record indices are disjoint and per iteration (iter_size I) cover exactly the records
one process with iter_size I x world reads. Closed-form checks against the unsharded layer; no
processes needed. (That TEST nets stay unsharded is checked by test_ddp.py: the 2-rank test scores
equal the single process's.)"""
import os

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from recaffe.protos import caffe_pb2

WORLD, ITER = 2, 2


def make(text, phase="TRAIN"):
    from recaffe.netspec.net.layers import layer_class
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(text, lp)
    torch.manual_seed(7)                   # the layer seed: the same on every rank
    layer = layer_class(lp.type, lp.name)(lp, [], phase)
    if hasattr(layer, "num_workers"):
        layer.num_workers = 0
    return layer


def sharded(text, rank):
    layer = make(text)
    layer.shard(rank, WORLD)
    return layer


def spy_records(layer):
    """Record (global batch index, source record indices) of each batch a Data/ImageData layer reads."""
    seen, maker = [], layer._maker
    orig = maker.indices

    def indices(b):
        out = orig(b)
        seen.append((b, [int(i) for i in out]))
        return out
    maker.indices = indices
    return seen


def check_stream(text, iters=3, records=True):
    single = make(text)
    ranks = [sharded(text, r) for r in range(WORLD)]
    spies = [spy_records(x) for x in [single] + ranks] if records else None
    want = [[t.clone() for t in single()] for _ in range(iters * ITER * WORLD)]
    got = [[[t.clone() for t in layer()] for _ in range(iters * ITER)] for layer in ranks]
    for r in range(WORLD):
        for b in range(iters * ITER):
            for x, y in zip(got[r][b], want[b * WORLD + r]):
                assert torch.equal(x, y), (r, b)
    if records:
        ref, per_rank = spies[0], spies[1:]
        n = ITER * WORLD
        for i in range(iters):
            mine = [per_rank[r][i * ITER:(i + 1) * ITER] for r in range(WORLD)]
            batches = [sorted(b for b, _ in m) for m in mine]
            assert not set(batches[0]) & set(batches[1])                     # disjoint
            assert sorted(batches[0] + batches[1]) == list(range(i * n, (i + 1) * n))   # = the iteration's
            recs = sorted(x for m in mine for _, idx in m for x in idx)
            assert recs == sorted(x for _, idx in ref[i * n:(i + 1) * n] for x in idx)
    return want


def test_data_layer_with_crop_and_mirror(tmp_path):
    from examples.synthetic_data import write_lmdb
    db = str(tmp_path / "db")
    write_lmdb(db, 64, 3, 14, 15, seed=2)
    text = ('name: "d" type: "Data" top: "data" top: "label" transform_param { crop_size: 11 mirror: true } '
            f'data_param {{ source: "{db}" batch_size: 3 backend: LMDB }}')
    check_stream(text)


def test_imagedata_with_shuffle(tmp_path):
    from examples.synthetic_data import write_images
    write_images(str(tmp_path / "img"), 24, 3, 10, 12, seed=5)
    text = ('name: "d" type: "ImageData" top: "data" top: "label" transform_param { mirror: true crop_size: 8 } '
            f'image_data_param {{ source: "{tmp_path}/img/list.txt" root_folder: "{tmp_path}/img/" batch_size: 5 '
            'shuffle: true }')
    check_stream(text, iters=4)                 # 80 samples: the shuffle wraps into more passes


def test_hdf5_data_with_shuffle(tmp_path):
    h5py = pytest.importorskip("h5py")
    files = []
    for k, rows in enumerate([7, 5]):
        p = tmp_path / f"f{k}.h5"
        with h5py.File(p, "w") as f:
            f["data"] = np.arange(rows, dtype=np.float32)[:, None] + 100 * k
            f["label"] = np.arange(rows, dtype=np.float32) + 100 * k
        files.append(str(p))
    (tmp_path / "list.txt").write_text("\n".join(files) + "\n")
    text = ('name: "h" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "%s" batch_size: 3 '
            'shuffle: true }' % (tmp_path / "list.txt"))
    want = check_stream(text, iters=4, records=False)   # 48 rows: 4 passes over the 12, reshuffled
    rows = torch.cat([w[1] for w in want]).tolist()
    assert sorted(rows[:12]) == list(range(7)) + list(range(100, 105))


def test_window_data(tmp_path):
    import cv2
    for k, (h, w) in enumerate([(40, 50), (30, 36)]):
        cv2.imwrite(str(tmp_path / f"img{k}.png"), (np.arange(h * w * 3) % 251).reshape(h, w, 3).astype(np.uint8))
    (tmp_path / "win.txt").write_text(
        "# 0\nimg0.png\n3 40 50\n3\n1 0.9 2 3 20 30\n2 0.7 25 5 45 35\n0 0.1 0 0 10 10\n"
        "# 1\nimg1.png\n3 30 36\n2\n3 0.6 5 5 30 25\n0 0.2 10 2 33 20\n")
    text = ('name: "w" type: "WindowData" top: "data" top: "label" window_data_param { source: "%s/win.txt" '
            'root_folder: "%s/" batch_size: 4 fg_fraction: 0.5 } transform_param { crop_size: 8 mirror: true }'
            % (tmp_path, tmp_path))
    check_stream(text, records=False)



def test_unshardable_train_sources_are_named_once_on_rank_0(tmp_path, monkeypatch):
    """Sources recaffe cannot split (Input feeds, MemoryData) keep giving each rank what it is fed: rank 0
    warns once per such layer; a Data layer in the same net is sharded; other ranks stay quiet."""
    from recaffe.solver import distributed
    from recaffe.solver.log import capture
    from recaffe.solver.solver import Solver
    import ddp_helpers as h
    db = h.make_db(tmp_path, n=32)
    net = tmp_path / "net.prototxt"
    net.write_text(f'''name: "mixed"
layer {{ name: "feed" type: "Input" top: "x" input_param {{ shape {{ dim: 4 dim: 3 }} }} }}
layer {{ name: "mem" type: "MemoryData" top: "m" top: "ml" memory_data_param {{ batch_size: 4 channels: 3 height: 1 width: 1 }} }}
layer {{ name: "data" type: "Data" top: "d" top: "dl" data_param {{ source: "{db}" batch_size: 4 backend: LMDB }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "ip" inner_product_param {{ num_output: 2 }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "ip" top: "loss" }}
layer {{ name: "sink" type: "Silence" bottom: "m" bottom: "ml" bottom: "d" bottom: "dl" }}
''')
    solver = tmp_path / "solver.prototxt"
    solver.write_text(f'net: "{net}" base_lr: 0.1 lr_policy: "fixed" max_iter: 1 random_seed: 1\n')
    s = Solver(str(solver))
    monkeypatch.setattr(distributed.SolverSync, "broadcast_params", lambda self, net: None)   # no group here
    for rank in (0, 1):
        sync = distributed.SolverSync(distributed.Group(rank=rank, world=2, backend="gloo"))
        with capture() as lines:
            sync.attach(s, 1)
        warned = [ln.split("] ", 1)[1] for ln in lines if ln.startswith("W")]
        if rank == 0:
            assert warned == [
                "layer 'feed' (Input) is not sharded: every rank trains on what its feed returns; split it with "
                "recaffe.solver_rank() / solver_count()",
                "layer 'mem' (MemoryData) is not sharded: every rank trains on the arrays it is given; split it "
                "with recaffe.solver_rank() / solver_count()"]
        else:
            assert warned == []
    data = s.net.layers[s.net.layer_names.index("data")]
    assert (data._maker.rank, data._maker.world) == (1, 2)
