"""Data / ImageData layers against real Caffe's tops (tests/golden/data/data_layers.npz, made by
tests/oracle/make_data_goldens.py), TRAIN-phase augmentation by distribution, and MemoryData,
HDF5Data, HDF5Output by closed form."""
import os

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import DataError, NetError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden", "data")
CASES = ["raw_meanfile", "enc_meanfile", "raw_meanvalue", "raw_nocrop_single_mean", "enc_force_gray", "gray_raw",
         "resized_raw", "imagedata_meanvalue", "imagedata_gray", "imagedata_resize"]
GOLDEN_NPZ = os.path.join(GOLDEN, "data_layers.npz")   # conftest's `golden` fixture reads it
pytestmark = pytest.mark.usefixtures("at_repo_root")   # the golden layer texts use paths relative to it


def make(text, phase="TEST", workers=0):
    from recaffe.netspec.net.layers import layer_class   # not at collection time: see _unshadow_dsl_layers
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(text, lp)
    layer = layer_class(lp.type, lp.name)(lp, [], phase)
    layer.num_workers = workers
    return layer


@pytest.mark.parametrize("case", CASES)
def test_matches_caffe(golden, case):
    layer = make(str(golden[case + "_layer"]))
    assert layer.top_shapes[0] == golden[case + "_data_0"].shape
    for k in range(4):   # 4 batches: wrap-around at the end of the source included
        data, label = layer()
        g = golden[f"{case}_data_{k}"]
        ours = data.numpy()
        if case == "imagedata_resize":   # OpenCV enlarging: clamped border rows may differ by 1 level
            assert np.abs(ours - g).max() <= 1
            assert np.array_equal(ours[:, :, 1:-1], g[:, :, 1:-1])
        else:
            assert np.array_equal(ours, g), f"{case} batch {k}: max diff {np.abs(ours - g).max()}"
        assert np.array_equal(label.numpy(), golden[f"{case}_label_{k}"])


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_workers_give_the_same_batches(golden, monkeypatch, backend):
    monkeypatch.setenv("RECAFFE_DATA_BACKEND", backend)   # process: DataLoader workers, uint8 shipped
    layer = make(str(golden["raw_meanfile_layer"]), workers=2)
    try:
        for k in range(4):
            if k == 2:
                layer.close()   # a restarted feeder continues where the stream was
            data, label = layer()
            assert np.array_equal(data.numpy(), golden[f"raw_meanfile_data_{k}"])
            assert np.array_equal(label.numpy(), golden[f"raw_meanfile_label_{k}"])
    finally:
        layer.close()


def test_batch_buffers_are_reused_only_once_released(golden, monkeypatch):
    """The thread feeder finishes into recycled buffers: a batch still held by the caller is never
    written again; released ones are reused."""
    monkeypatch.setenv("RECAFFE_DATA_BACKEND", "thread")
    layer = make(str(golden["raw_meanfile_layer"]), workers=2)
    try:
        held = [layer()[0] for _ in range(4)]
        ptrs = set()
        for _ in range(12):
            data, _ = layer()
            ptrs.add(data.data_ptr())
            del data
        for k, data in enumerate(held):
            assert np.array_equal(data.numpy(), golden[f"raw_meanfile_data_{k}"])
        assert len(ptrs) < 12 and not ptrs & {d.data_ptr() for d in held}
    finally:
        layer.close()


TRAIN_LAYER = ('name: "data" type: "Data" top: "data" top: "label" data_param { source: "%s" batch_size: 8 '
               'backend: LMDB } transform_param { crop_size: 15 mirror: true %s }')


def _images():
    """The images of lmdb_raw (19 x 23, BGR) as Caffe stored them."""
    from recaffe.netspec.data.datum import datum_to_array, parse_datum
    from recaffe.netspec.data.lmdb_io import LMDBReader
    r = LMDBReader(os.path.join(GOLDEN, "lmdb_raw"))
    return [datum_to_array(parse_datum(r.get(i))).astype(np.float32) for i in range(len(r))]


def test_train_crop_and_mirror_distribution():
    layer = make(TRAIN_LAYER % (os.path.join(GOLDEN, "lmdb_raw"), ""), phase="TRAIN")
    layer.seed = 7
    # every crop of every image (record j of each 8-record batch) at every offset, plain and flipped
    views = [{} for _ in range(8)]
    for j, img in enumerate(_images()):
        for h in range(19 - 15 + 1):
            for w in range(23 - 15 + 1):
                crop = img[:, h:h + 15, w:w + 15]
                views[j][crop.tobytes()] = (h, w, False)
                views[j][crop[:, :, ::-1].copy().tobytes()] = (h, w, True)
    seen, mirrored, n = set(), 0, 0
    for _ in range(150):
        data, _ = layer()
        for j in range(8):
            h, w, m = views[j][data[j].numpy().tobytes()]
            seen.add((h, w))
            mirrored += m
            n += 1
    assert seen == {(h, w) for h in range(5) for w in range(9)}   # every offset reachable
    assert abs(mirrored / n - 0.5) < 0.05                           # n = 1200: ~ 3.5 sigma


def test_train_reproducible_for_a_seed():
    src = os.path.join(GOLDEN, "lmdb_raw")
    mean = 'mean_file: "%s"' % os.path.join(GOLDEN, "mean.binaryproto")
    runs = []
    for workers, seed in [(0, 3), (2, 3), (0, 4)]:
        layer = make(TRAIN_LAYER % (src, mean), phase="TRAIN", workers=workers)
        layer.seed = seed
        runs.append(torch.stack([layer()[0] for _ in range(3)]))
        layer.close()
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_seed_follows_torch_manual_seed():
    src = os.path.join(GOLDEN, "lmdb_raw")
    out = []
    for _ in range(2):
        torch.manual_seed(11)
        out.append(make(TRAIN_LAYER % (src, ""), phase="TRAIN")()[0])
    assert torch.equal(out[0], out[1])


def test_mirror_applies_in_test_phase_and_after_mean():
    """Caffe mirrors whenever mirror: true, also in TEST; the flip is of the mean-subtracted crop."""
    src, meanf = os.path.join(GOLDEN, "lmdb_raw"), os.path.join(GOLDEN, "mean.binaryproto")
    from recaffe.netspec.data.meanfile import read_mean
    layer = make(TRAIN_LAYER % (src, 'mean_file: "%s" scale: 0.5' % meanf), phase="TEST")
    img, mean = _images()[0], read_mean(meanf)
    centre = (img - mean)[:, 2:17, 4:19] * np.float32(0.5)
    flips = [layer()[0][0].numpy() for _ in range(40)]
    plain = sum(np.array_equal(f, centre) for f in flips)
    flipped = sum(np.array_equal(f, centre[:, :, ::-1]) for f in flips)
    assert plain + flipped == 40 and 5 < flipped < 35


def test_imagedata_shuffle_and_rand_skip(tmp_path):
    lst = os.path.join(GOLDEN, "images", "list.txt")
    text = ('name: "d" type: "ImageData" top: "data" top: "label" image_data_param { source: "%s" '
            'root_folder: "%s/" batch_size: 4 shuffle: true rand_skip: 5 }' % (lst, os.path.join(GOLDEN, "images")))
    torch.manual_seed(0)
    layer = make(text)
    labels = [layer()[1] for _ in range(8)]   # 32 samples = 4 passes over 8 images
    all_labels = sorted([(i * 3) % 5 for i in range(8)])
    stream = torch.cat(labels).tolist()
    skip = layer._maker.skip
    assert 0 <= skip < 5
    first_pass_tail = stream[:8 - skip]
    full_pass = stream[8 - skip:16 - skip]
    assert sorted(full_pass) == all_labels          # each pass is a permutation of the list
    assert len(first_pass_tail) == 8 - skip


def test_memory_data():
    layer = make('name: "m" type: "MemoryData" top: "data" top: "label" memory_data_param { batch_size: 2 '
                 'channels: 1 height: 2 width: 3 }')
    assert layer.top_shapes == [(2, 1, 2, 3), (2,)]
    with pytest.raises(DataError, match="set_input_arrays"):
        layer()
    x = np.arange(4 * 6, dtype=np.float32).reshape(4, 1, 2, 3)
    y = np.arange(4, dtype=np.float32)
    layer.set_input_arrays(x, y)
    got = [layer() for _ in range(3)]
    assert np.array_equal(got[0][0].numpy(), x[:2]) and np.array_equal(got[1][1].numpy(), y[2:])
    assert np.array_equal(got[2][0].numpy(), x[:2])                    # cycles
    with pytest.raises(DataError, match="multiple of batch_size"):
        layer.set_input_arrays(x[:3], y[:3])
    with pytest.raises(DataError, match="float32"):
        layer.set_input_arrays(x.astype(np.float64), y)


def test_hdf5_data_and_output(tmp_path):
    h5py = pytest.importorskip("h5py")
    files = []
    for k, rows in enumerate([3, 2]):
        p = tmp_path / f"f{k}.h5"
        with h5py.File(p, "w") as f:
            f["data"] = np.arange(rows * 4, dtype=np.float64).reshape(rows, 2, 2) + 100 * k
            f["label"] = np.arange(rows, dtype=np.int32) + 10 * k
        files.append(str(p))
    (tmp_path / "list.txt").write_text("\n".join(files) + "\n")
    layer = make('name: "h" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "%s" '
                 'batch_size: 4 }' % (tmp_path / "list.txt"))
    assert layer.top_shapes == [(4, 2, 2), (4,)]
    labels = torch.cat([layer()[1] for _ in range(3)]).tolist()
    assert labels == [0, 1, 2, 10, 11, 0, 1, 2, 10, 11, 0, 1]           # across files, wrapping
    d = layer()[0]
    assert d.dtype == torch.float32 and d[0, 0, 0].item() == 8.0 and d[1, 0, 0].item() == 100.0
    out = make('name: "o" type: "HDF5Output" bottom: "data" bottom: "label" hdf5_output_param { '
               'file_name: "%s" }' % (tmp_path / "out.h5"), workers=None)
    out(d, torch.arange(4.0))
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert f["data"].shape == (4, 2, 2, 1) and f["label"].shape == (4, 1, 1, 1)
        assert np.array_equal(f["data"][:, :, :, 0], d.numpy())
    with pytest.raises(NetError, match="transform_param"):
        make('name: "h" type: "HDF5Data" top: "data" hdf5_data_param { source: "%s" batch_size: 1 } '
             'transform_param { scale: 2 }' % (tmp_path / "list.txt"))


def test_bad_inputs(tmp_path):
    raw = os.path.join(GOLDEN, "lmdb_raw")
    with pytest.raises(DataError, match="LevelDB"):
        (tmp_path / "ldb").mkdir()
        (tmp_path / "ldb" / "CURRENT").write_text("MANIFEST-000001\n")
        make('name: "d" type: "Data" top: "data" data_param { source: "%s" batch_size: 2 backend: LEVELDB }'
             % (tmp_path / "ldb"))
    with pytest.raises(DataError, match="does not exist"):
        make('name: "d" type: "Data" top: "data" data_param { source: "%s/nope" batch_size: 2 backend: LMDB }'
             % tmp_path)
    bad_mean = tmp_path / "mean.binaryproto"
    from recaffe.netspec.data.meanfile import write_mean
    write_mean(np.zeros((3, 10, 10), np.float32), str(bad_mean))
    with pytest.raises(DataError, match=r"mean file .*\(3, 10, 10\).*\(3, 19, 23\)"):
        make('name: "d" type: "Data" top: "data" data_param { source: "%s" batch_size: 2 backend: LMDB } '
             'transform_param { mean_file: "%s" }' % (raw, bad_mean))
    with pytest.raises(DataError, match="smaller than crop_size"):
        make('name: "d" type: "Data" top: "data" data_param { source: "%s" batch_size: 2 backend: LMDB } '
             'transform_param { crop_size: 20 }' % raw)
    with pytest.raises(DataError, match="mean_value"):
        make('name: "d" type: "Data" top: "data" data_param { source: "%s" batch_size: 2 backend: LMDB } '
             'transform_param { mean_value: 1 mean_value: 2 }' % raw)
    lst = tmp_path / "list.txt"
    lst.write_text("img_0.png 1\nimg_1.jpg one\n")
    with pytest.raises(DataError, match=r"list.txt:2: label 'one' is not an integer"):
        make('name: "d" type: "ImageData" top: "data" top: "label" image_data_param { source: "%s" }' % lst)
    lst.write_text("missing.png 1\n")
    with pytest.raises(DataError, match=r"list.txt:1: .*missing.png: cannot read image"):
        make('name: "d" type: "ImageData" top: "data" top: "label" image_data_param { source: "%s" '
             'root_folder: "%s/" }' % (lst, tmp_path))


def test_through_net(golden):
    from recaffe.netspec.net.net import Net
    net = Net('layer { %s }\nlayer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
              'inner_product_param { num_output: 5 } }\nlayer { name: "loss" type: "SoftmaxWithLoss" '
              'bottom: "ip" bottom: "label" top: "loss" }' % golden["raw_meanfile_layer"], phase="TEST")
    for k in range(4):
        net()
        assert np.array_equal(net.blobs["data"].numpy(), golden[f"raw_meanfile_data_{k}"])
        assert np.array_equal(net.blobs["label"].numpy(), golden[f"raw_meanfile_label_{k}"])
    for layer in net.layers:
        getattr(layer, "close", lambda: None)()
