"""The LevelDB backend (netspec/data/leveldb_io.py, through plyvel: the leveldb extra) against real
Caffe (tests/golden/data/leveldb_*, made by tests/oracle/make_leveldb_goldens.py):

* LevelDBs written by Caffe's convert_imageset --backend leveldb read by our Data layer give Caffe's
  Data layer batches (backend LEVELDB), and the records Caffe wrote to its LMDBs;
* our convert_imageset --backend leveldb writes the same keys and byte-identical Datums, and, with the
  oracle present, Caffe's Data layer reads our LevelDBs into the same batches;
* without plyvel, one line naming the extra.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from recaffe.netspec.data.convert import compute_image_mean, convert_imageset
from recaffe.netspec.data.lmdb_io import LMDBReader
from recaffe.netspec.data.meanfile import read_mean
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import DataError

plyvel = pytest.importorskip("plyvel", reason="the LevelDB backend needs plyvel (pip install recaffe[leveldb])")

from recaffe.netspec.data.leveldb_io import LevelDBReader, LevelDBWriter  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden", "data")
IMAGES = os.path.join(GOLDEN, "images") + "/"
LIST = os.path.join(IMAGES, "list.txt")
GOLDEN_NPZ = os.path.join(GOLDEN, "leveldb_layers.npz")     # conftest's `golden` fixture reads it
CASES = ("raw", "raw_plain", "enc")
CAFFE_READY = os.path.exists("/opt/caffe-oracle/.ready")


def _copy(tmp_path, name):
    """A copy of a golden LevelDB (opening one writes to it; the goldens stay as Caffe left them)."""
    dst = tmp_path / name
    shutil.copytree(os.path.join(GOLDEN, name), dst)
    return str(dst)


def _records(path):
    reader = LevelDBReader(path)
    try:
        return list(reader.items())
    finally:
        reader.close()


def _data_layer(text, workers=0):
    from recaffe.netspec.net.layers import layer_class
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(text, lp)
    layer = layer_class(lp.type, lp.name)(lp, [], "TEST")
    layer.num_workers = workers
    return layer


def test_caffes_leveldb_holds_caffes_lmdb_records(tmp_path):
    for db, lmdb in (("leveldb_raw", "lmdb_raw"), ("leveldb_enc", "lmdb_enc")):
        assert _records(_copy(tmp_path, db)) == list(LMDBReader(os.path.join(GOLDEN, lmdb)).items())


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("workers", [0, 2])
def test_data_layer_reads_caffes_leveldb_as_caffe(golden, tmp_path, case, workers):
    text = str(golden[case + "_layer"])
    for name in ("leveldb_raw", "leveldb_enc"):
        text = text.replace(os.path.relpath(os.path.join(GOLDEN, name), ROOT), _copy(tmp_path, name))
    layer = _data_layer(text, workers)
    try:
        assert layer.top_shapes[0] == golden[case + "_data_0"].shape
        for k in range(4):      # 4 batches of 3 over 8 records: the stream wraps as Caffe's
            data, label = layer()
            np.testing.assert_array_equal(data.numpy(), golden[f"{case}_data_{k}"])
            np.testing.assert_array_equal(label.numpy(), golden[f"{case}_label_{k}"])
    finally:
        layer.close()
        layer._maker.source.reader.close()


def test_process_workers_fall_back_to_threads(golden, tmp_path, monkeypatch):
    """LevelDB admits one process: forked workers could not open it, so its batches come from threads."""
    monkeypatch.setenv("RECAFFE_DATA_BACKEND", "process")
    text = str(golden["raw_layer"]).replace(os.path.relpath(os.path.join(GOLDEN, "leveldb_raw"), ROOT),
                                            _copy(tmp_path, "leveldb_raw"))
    layer = _data_layer(text, workers=2)
    try:
        for k in range(2):
            np.testing.assert_array_equal(layer()[0].numpy(), golden[f"raw_data_{k}"])
    finally:
        layer.close()
        layer._maker.source.reader.close()


@pytest.mark.parametrize("golden_db, kw", [("leveldb_raw", {}), ("leveldb_enc", {"encoded": True})])
@pytest.mark.parametrize("workers", [1, 2])
def test_convert_imageset_leveldb_matches_caffe(tmp_path, golden_db, kw, workers):
    out = str(tmp_path / "ours")
    convert_imageset(IMAGES, LIST, out, backend="leveldb", workers=workers, progress=False, **kw)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".ours")]      # no temporary left
    assert _records(out) == _records(_copy(tmp_path, golden_db))               # keys and serialized Datums


def test_cli_and_mean_of_a_leveldb(tmp_path):
    db = str(tmp_path / "db")
    r = subprocess.run([sys.executable, "-m", "recaffe.tools.convert_imageset", "--backend=leveldb", IMAGES, LIST, db],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    mean, count = compute_image_mean(db, workers=1, backend="leveldb")
    assert count == 8
    np.testing.assert_array_equal(mean, read_mean(os.path.join(GOLDEN, "mean.binaryproto")))   # Caffe's mean
    r = subprocess.run([sys.executable, "-m", "recaffe.tools.convert_imageset", "--backend=leveldb", IMAGES, LIST, db],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "already exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_siamese_pair_leveldb_trains(tmp_path):
    """BVLC's siamese example: pair datums (2 channels) in a LevelDB, a Data layer with backend LEVELDB,
    Slice into the two images, weight-shared towers, ContrastiveLoss; an SGD step lowers the loss."""
    from recaffe.netspec.data.datum import array_to_datum
    from recaffe.netspec.net.net import Net
    rng = np.random.default_rng(0)
    db = str(tmp_path / "mnist_siamese_train_leveldb")
    with LevelDBWriter(db) as w:
        for i in range(16):
            pair = rng.integers(0, 256, (2, 6, 6), dtype=np.uint8)
            w.put(f"{i:08d}", array_to_datum(pair, int(i % 2)).SerializeToString())
    tower = ('layer {{ name: "ip1{s}" type: "InnerProduct" bottom: "data{s}" top: "ip1{s}" '
             'param {{ name: "ip1_w" }} param {{ name: "ip1_b" }} '
             'inner_product_param {{ num_output: 4 weight_filler {{ type: "xavier" }} }} }}\n')
    net = Net('layer { name: "pair_data" type: "Data" top: "pair_data" top: "sim" '
              'data_param { source: "%s" batch_size: 16 backend: LEVELDB } transform_param { scale: 0.00390625 } }\n'
              'layer { name: "slice_pair" type: "Slice" bottom: "pair_data" top: "data" top: "data_p" '
              'slice_param { slice_dim: 1 slice_point: 1 } }\n' % db + tower.format(s="") + tower.format(s="_p") +
              'layer { name: "loss" type: "ContrastiveLoss" bottom: "ip1" bottom: "ip1_p" bottom: "sim" top: "loss" '
              'contrastive_loss_param { margin: 1 } }\n', phase="TRAIN")
    torch.manual_seed(0)
    try:
        net()
        first = net.loss.item()
        net.backward()
        with torch.no_grad():
            for p, lr_mult, *_ in net.learnable_params():
                p -= 0.5 * lr_mult * p.grad
        assert net.layer("ip1").blobs[0] is net.layer("ip1_p").blobs[0]
        net()                   # batch 16 = the whole database: the same pairs again
        assert np.isfinite(first) and net.loss.item() < first
    finally:
        net.layer("pair_data").close()


def test_missing_plyvel_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "plyvel", None)
    with pytest.raises(DataError, match=r"^LevelDB needs the plyvel package: pip install 'recaffe\[leveldb\]'"):
        convert_imageset(IMAGES, LIST, str(tmp_path / "db"), backend="leveldb", workers=1, progress=False)
    assert not os.path.exists(tmp_path / "db")
    monkeypatch.delitem(sys.modules, "plyvel")
    db = _copy(tmp_path, "leveldb_raw")
    monkeypatch.setitem(sys.modules, "plyvel", None)
    with pytest.raises(DataError, match=r"layer 'data': LevelDB needs the plyvel package"):
        _data_layer('name: "data" type: "Data" top: "data" data_param { source: "%s" batch_size: 2 backend: LEVELDB }'
                    % db)


@pytest.mark.skipif(not CAFFE_READY, reason="needs the real Caffe oracle (/work/shared/oracle/caffe-run)")
def test_caffe_reads_our_leveldb(golden, tmp_path):
    """Real Caffe's Data layer (backend LEVELDB) reads what our convert_imageset wrote, into the same
    batches as from its own LevelDB."""
    folder = tmp_path / "ours"
    folder.mkdir()
    convert_imageset(IMAGES, LIST, str(folder / "leveldb"), backend="leveldb", workers=1, progress=False)
    convert_imageset(IMAGES, LIST, str(folder / "leveldb_enc"), backend="leveldb", encoded=True, workers=1,
                     progress=False)
    subprocess.run(["/work/shared/oracle/caffe-run", "python3", "tests/oracle/make_leveldb_goldens.py", "--check-ours",
                    str(folder)], cwd=ROOT, check=True, capture_output=True)
    seen = np.load(folder / "caffe_read_leveldb.npz")
    for case in CASES:
        for k in range(4):
            np.testing.assert_array_equal(seen[f"{case}_data_{k}"], golden[f"{case}_data_{k}"])
            np.testing.assert_array_equal(seen[f"{case}_label_{k}"], golden[f"{case}_label_{k}"])
