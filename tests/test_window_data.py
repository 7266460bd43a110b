"""WindowData against real Caffe 1.0's tops (tests/golden/window/window.npz, made by
tests/oracle/make_window_goldens.py), its sampling by distribution, and its errors."""
import os

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import DataError, NetError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden", "window")
CASES = ["warp", "warp_fg_rounding", "warp_context_border", "square", "square_context", "context_clamp",
         "meanfile", "meanvalue_scale", "grey_single_mean"]
GOLDEN_NPZ = os.path.join(GOLDEN, "window.npz")   # conftest's `golden` fixture reads it
pytestmark = pytest.mark.usefixtures("at_repo_root")   # the golden layer texts use paths relative to it


def make(text, phase="TEST"):
    from recaffe.netspec.net.layers import layer_class
    lp = caffe_pb2.LayerParameter()
    text_format.Merge(text, lp)
    return layer_class(lp.type, lp.name)(lp, [], phase)


def layer_text(source, wparams="batch_size: 2 fg_fraction: 0.5", tparams="crop_size: 6", root=GOLDEN + "/"):
    return (f'name: "win" type: "WindowData" top: "data" top: "label" window_data_param {{ source: "{source}" '
            f'root_folder: "{root}" {wparams} }} transform_param {{ {tparams} }}')


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case", CASES)
def test_matches_caffe(golden, case):
    layer = make(str(golden[case + "_layer"]))
    g_data, g_label = golden[case + "_data_0"], golden[case + "_label_0"]
    assert layer.top_shapes == [g_data.shape, g_label.shape]
    for _ in range(2):   # forced choices: every batch is the same
        data, label = layer()
        assert data.shape == g_data.shape and label.shape == g_label.shape
        np.testing.assert_allclose(data.numpy(), g_data, rtol=0, atol=1e-5)
        assert np.array_equal(label.numpy(), g_label)


def test_mirror_matches_one_of_both_renderings(golden):
    """Caffe's mirrored batches (random): each item is our plain or mirrored rendering of its window,
    mirrored padding included, and Caffe drew both."""
    layer = make(str(golden["mirror_layer"]))
    (bg,), (fg,) = layer.bg, layer.fg
    seen = set()
    for k in range(4):
        g = golden[f"mirror_data_{k}"]
        assert np.array_equal(golden[f"mirror_label_{k}"], [0, 0, 1, 1])
        for i, win in enumerate([bg, bg, fg, fg]):
            img = layer._decode(win[0])
            plain, flipped = layer.render(win, img, False), layer.render(win, img, True)
            assert np.abs(plain - flipped).max() > 10
            match = [np.allclose(r, g[i], rtol=0, atol=1e-5) for r in (plain, flipped)]
            assert sum(match) == 1, f"batch {k} item {i}"
            seen.add((i >= 2, match[1]))
    assert len(seen) == 4   # fg and bg, each seen plain and mirrored


def sampling_file(tmp_path):
    text = ("# 0\nimg0.png\n3 40 50\n4\n"
            "1 0.9 2 3 20 30\n2 0.7 25 5 45 35\n0 0.1 0 0 10 10\n9 0.45 5 5 15 15\n"   # the 0.45 one is dropped
            "# 1\nimg1.png\n3 30 36\n3\n"
            "3 0.5 5 5 30 25\n0 0.2 10 2 33 20\n0 0.0 1 8 12 28\n")
    return write(tmp_path / "win.txt", text)


def identify(layer, data, labels):
    """(window index in bg+fg, mirrored) of every item, by matching all renderings."""
    wins = layer.bg + layer.fg
    imgs = {k: layer._decode(k) for k in range(len(layer.images))}
    cands = [(j, m, layer.render(w, imgs[w[0]], m)) for j, w in enumerate(wins) for m in (False, True)]
    out = []
    for item, lab in zip(data.numpy(), labels.numpy()):
        hits = [(j, m) for j, m, r in cands if np.array_equal(r, item)]
        assert len(hits) == 1
        assert wins[hits[0][0]][1] == lab
        out.append(hits[0])
    return out


def test_sampling_distribution_and_seed(tmp_path):
    src = sampling_file(tmp_path)
    text = layer_text(src, "batch_size: 8 fg_fraction: 0.5 bg_threshold: 0.3 context_pad: 1",
                      "crop_size: 6 mirror: true")
    torch.manual_seed(11)
    layer = make(text)
    assert (len(layer.fg), len(layer.bg)) == (3, 3)
    counts, mirrors, n = np.zeros(6), 0, 0
    for _ in range(60):
        data, labels = layer()
        picks = identify(layer, data, labels)
        assert all(j < 3 for j, _ in picks[:4]) and all(j >= 3 for j, _ in picks[4:])   # bg first, then fg
        for j, m in picks:
            counts[j] += 1
            mirrors += m
            n += 1
    # 240 draws from 3 windows per set: mean 80, sd ~7.3; 480 coin flips: mean 240, sd ~11
    assert np.all(np.abs(counts - 80) < 35), counts
    assert abs(mirrors - n / 2) < 55, mirrors
    torch.manual_seed(5)
    a = make(text)
    torch.manual_seed(5)
    b = make(text)
    for _ in range(3):
        (da, la), (db, lb) = a(), b()
        assert torch.equal(da, db) and torch.equal(la, lb)
    torch.manual_seed(6)
    c = make(text)
    assert not all(torch.equal(a()[0], c()[0]) for _ in range(3))


def test_no_mirror_without_transform_mirror(tmp_path):
    layer = make(layer_text(sampling_file(tmp_path), "batch_size: 8 bg_threshold: 0.3", "crop_size: 6"))
    data, labels = layer()
    assert layer.num_fg == 2 and not any(m for _, m in identify(layer, data, labels))


def test_in_a_net(golden):
    from recaffe.netspec.net.net import Net
    text = str(golden["warp_layer"])
    net = Net(f'name: "n" layer {{ {text} }} layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
              f'inner_product_param {{ num_output: 2 }} }}', phase="TRAIN")
    out = net.forward()
    assert tuple(out["ip"].shape) == (4, 2)
    np.testing.assert_allclose(net.blobs["data"].detach().numpy(), golden["warp_data_0"], atol=1e-5)


HEAD = "# 0\nimg0.png\n3 40 50\n"
BAD = [
    ("", "window file is empty"),
    ("0\nimg0.png\n3 40 50\n0\n", "expected '#'"),
    (HEAD + "1\n1 0.9 2 3 x 9\n", r":5: a window's x2 must be an integer, got 'x'"),
    (HEAD + "2\n1 0.9 2 3 4 9\n", "window file ends where a window's class"),
    (HEAD + "1\n1 0.9 9 3 4 9\n", ":5: window (9, 3, 4, 9) needs x1 <= x2"),
    (HEAD + "1\n0 0.9 2 3 4 9\n", ":5: foreground window (overlap 0.9 >= fg_threshold 0.5) has class 0"),
    (HEAD + "1\n1 0.9 2 3 4 9\n", "a batch needs 1 background window(s)"),
    ("# 3\nimg0.png\n3 40 50\n2\n1 0.9 2 3 4 9\n0 0.1 2 3 4 9\n", ":5: image_index 3"),
    ("# 0\nimg0.png\n1 40 50\n2\n1 0.9 2 3 4 9\n0 0.1 2 3 4 9\n", "says 1 channels"),
]


@pytest.mark.parametrize("text,msg", BAD)
def test_bad_window_files(tmp_path, text, msg):
    src = write(tmp_path / "bad.txt", text)
    with pytest.raises(DataError) as e:
        make(layer_text(src))
    assert msg in str(e.value) and "bad.txt" in str(e.value)


def test_missing_files_and_images(tmp_path):
    with pytest.raises(DataError, match="cannot open window file"):
        make(layer_text(str(tmp_path / "nope.txt")))
    src = write(tmp_path / "w.txt", "# 0\nimg0.png\n3 40 50\n1\n1 0.9 2 3 4 9\n"
                                    "# 1\nmissing.png\n3 40 50\n1\n0 0.1 2 3 4 9\n")
    layer = make(layer_text(src))
    with pytest.raises(DataError, match=r"w\.txt:6: image .*missing\.png.* not found"):
        layer()
    with pytest.raises(DataError, match=r"w\.txt:6: cannot read image .*missing\.png"):
        make(layer_text(src, "batch_size: 2 fg_fraction: 0.5 cache_images: true"))
    out = write(tmp_path / "o.txt", "# 0\nimg0.png\n3 40 50\n2\n1 0.9 2 3 4 9\n0 0.1 40 3 50 9\n")
    with pytest.raises(DataError, match=r"o\.txt:6: window \(40, 3, 50, 9\) lies outside its 50x40 image"):
        make(layer_text(out))()


def test_bad_parameters(tmp_path):
    src = write(tmp_path / "w.txt", "# 0\nimg0.png\n3 40 50\n2\n1 0.9 2 3 4 9\n0 0.1 2 3 4 9\n")
    mean = os.path.join(GOLDEN, "mean.binaryproto")
    for wp, tp, msg in [
            ("batch_size: 2", "", "transform_param.crop_size must be > 0"),
            ("batch_size: 2 crop_size: 6", "", "window_data_param.crop_size is not read"),
            ("batch_size: 0", "crop_size: 6", "batch_size must be > 0"),
            ("batch_size: 2 fg_fraction: 1.5", "crop_size: 6", r"fg_fraction must be in \[0, 1\], got 1.5"),
            ("batch_size: 2 crop_mode: \"sqaure\"", "crop_size: 6", "valid: \"warp\", \"square\""),
            ("batch_size: 2 context_pad: 3", "crop_size: 6", "context_pad 3 leaves no room"),
            ("batch_size: 2", f'crop_size: 6 mean_file: "{mean}" mean_value: 1', "not both"),
            ("batch_size: 2", "crop_size: 6 mean_value: 1 mean_value: 2", "give 1 mean_value or 3"),
            ("batch_size: 2", f'crop_size: 19 mean_file: "{mean}"', "too small")]:
        with pytest.raises((NetError, DataError), match=msg):
            make(layer_text(src, wp, tp))
