"""tools/classify.py and recaffe.Classifier on closed forms: a deploy net InnerProduct + Softmax with known
weights, PNG images, a mean file; the printed top-k equal numpy's preprocessing (RGB [0,1] -> BGR x 255
minus the per-channel mean) and softmax, for the centre crop and the 10-crop oversampling.
(recaffe.Classifier against real pycaffe: tests/test_facade_legacy.py.)"""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import recaffe as caffe
from recaffe.protos.errors import RecaffeError
from recaffe.tools import classify

DEPLOY = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 4 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""
CHANNEL_MEAN = np.array([100.0, 110.0, 120.0], np.float32)


@pytest.fixture
def setup(tmp_path):
    proto = tmp_path / "deploy.prototxt"
    proto.write_text(DEPLOY)
    net = caffe.Net(str(proto), caffe.TEST)
    rng = np.random.RandomState(0)
    w = (rng.randn(4, 192) * 0.002).astype(np.float32)
    b = rng.randn(4).astype(np.float32)
    net.params["fc"][0].data[...] = w
    net.params["fc"][1].data[...] = b
    weights = tmp_path / "w.caffemodel"
    net.save(str(weights))
    mean = CHANNEL_MEAN[:, None, None] + rng.uniform(-5, 5, (3, 8, 8)).astype(np.float32)
    mean -= mean.mean(axis=(1, 2))[:, None, None] - CHANNEL_MEAN[:, None, None]   # exact channel means
    np.save(tmp_path / "mean.npy", mean)
    (tmp_path / "mean.binaryproto").write_bytes(caffe.io.array_to_blobproto(mean[None]).SerializeToString())
    (tmp_path / "labels.txt").write_text("n0 zero\nn1 one\nn2 two\nn3 three\n")
    images = []
    for i, size in enumerate((8, 10)):
        pix = rng.randint(0, 256, (size, size, 3)).astype(np.uint8)
        path = tmp_path / f"img{i}.png"
        Image.fromarray(pix).save(path)
        images.append((str(path), pix))
    return tmp_path, w, b, images


def expected(pix, w, b, crops):
    """Mean softmax over the given (y, x, mirror) 8x8 crops of the HWC uint8 image."""
    x = pix.astype(np.float32) / 255
    probs = []
    for y, x0, mirror in crops:
        c = x[y:y + 8, x0:x0 + 8]
        if mirror:
            c = c[:, ::-1]
        v = (c.transpose(2, 0, 1)[::-1] * 255 - CHANNEL_MEAN[:, None, None]).reshape(-1)
        z = w @ v + b
        e = np.exp(z - z.max())
        probs.append(e / e.sum())
    return np.mean(probs, axis=0)


def printed(text):
    lines = text.strip().splitlines()
    return lines[0], [(float(l.split()[1]), " ".join(l.split()[2:])) for l in lines[1:]]


def check(text, path, probs, labels, top):
    head, rows = printed(text)
    assert head == path
    order = np.argsort(-probs, kind="stable")[:top]
    assert [r[1] for r in rows] == [labels[k] for k in order]
    np.testing.assert_allclose([r[0] for r in rows], probs[order], atol=6e-5)


LABELS = ["n0 zero", "n1 one", "n2 two", "n3 three"]


@pytest.mark.parametrize("mean_file", ["mean.npy", "mean.binaryproto"])
def test_centre_crop_flags(setup, capsys, mean_file):
    d, w, b, images = setup
    path, pix = images[0]
    classify.main([path, "-model", str(d / "deploy.prototxt"), "-weights", str(d / "w.caffemodel"),
                   "-mean", str(d / mean_file), "-labels", str(d / "labels.txt"), "-top", "3"])
    check(capsys.readouterr().out, path, expected(pix, w, b, [(0, 0, False)]), LABELS, 3)


def test_positional_seed_recipe_form(setup, capsys):
    """predict.py IMAGE deploy.prototxt model.caffemodel mean.npy CROP == the flag form with -crop."""
    d, w, b, images = setup
    path, pix = images[0]
    classify.main([path, str(d / "deploy.prototxt"), str(d / "w.caffemodel"), str(d / "mean.npy"), "8"])
    positional = capsys.readouterr().out
    classify.main([path, "-model", str(d / "deploy.prototxt"), "-weights", str(d / "w.caffemodel"),
                   "-mean", str(d / "mean.npy"), "-crop", "8"])
    assert positional == capsys.readouterr().out
    head, rows = printed(positional)
    assert head == path and len(rows) == 4 and sorted(r[1] for r in rows) == ["0", "1", "2", "3"]
    assert sum(r[0] for r in rows) == pytest.approx(1, abs=3e-4)


def test_oversample_averages_ten_crops(setup, capsys):
    d, w, b, images = setup
    path, pix = images[1]             # 10 x 10 image, resized to 10 (no-op), 8 x 8 crops
    classify.main([path, "-model", str(d / "deploy.prototxt"), "-weights", str(d / "w.caffemodel"),
                   "-mean", str(d / "mean.npy"), "-crop", "8", "-resize", "10", "--oversample", "-top", "4",
                   "-labels", str(d / "labels.txt")])
    corners = [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]
    crops = [(y, x, False) for y, x in corners] + [(y, x, True) for y, x in corners]
    check(capsys.readouterr().out, path, expected(pix, w, b, crops), LABELS, 4)
    classify.main([path, "-model", str(d / "deploy.prototxt"), "-weights", str(d / "w.caffemodel"),
                   "-mean", str(d / "mean.npy"), "-crop", "8", "-resize", "10", "-top", "4",
                   "-labels", str(d / "labels.txt")])
    check(capsys.readouterr().out, path, expected(pix, w, b, [(1, 1, False)]), LABELS, 4)


def test_errors(setup):
    d, w, b, images = setup
    with pytest.raises(RecaffeError, match="no image"):
        classify.main(["-model", "x.prototxt", "-weights", "w"])
    with pytest.raises(RecaffeError, match="-weights is required"):
        classify.main([images[0][0], "-model", str(d / "deploy.prototxt")])
    with pytest.raises(RecaffeError, match="labels for 4 classes"):
        (d / "bad.txt").write_text("a\nb\n")
        classify.main([images[0][0], "-model", str(d / "deploy.prototxt"), "-weights", str(d / "w.caffemodel"),
                       "-labels", str(d / "bad.txt")])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-m", "recaffe.tools.classify", images[0][0], "-model", str(d / "deploy.prototxt"),
                        "-weights", str(d / "missing.caffemodel")], capture_output=True, text=True, cwd=root,
                       env=dict(os.environ, PYTHONPATH=root))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "missing.caffemodel" in r.stderr
