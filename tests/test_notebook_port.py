"""BVLC's examples/02-fine-tuning.ipynb, ported to Python 3 with ``import recaffe as caffe``
(tests/legacy_scripts/fine_tuning_notebook.py), runs on a tiny generated flickr-like ImageData set:
both solvers train, eval_style_net evaluates, disp_preds prints, and the notebook's own checks hold.

Checks: the nets and solver it writes (str(n.to_proto()), str(s)) are byte for byte pycaffe's texts on the
installed protobuf (goldens of tests/golden/dsl/ from tests/oracle/make_dsl_goldens.py, printed as
tests/pycaffe_text.py explains); the zero-initialised classifier gives 20% per style and a
first loss of ln 5; frozen layers keep the pretrained weights while the classifier learns; accuracies
are multiples of 1 / (batch x test batches); the end-to-end phase changes conv1.
"""
import io
import os
import re
import runpy
import tempfile
import warnings

import numpy as np
import pytest
from PIL import Image

import recaffe as caffe
from pycaffe_text import pycaffe_str

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = os.path.join(HERE, "legacy_scripts", "fine_tuning_notebook.py")
DSL = os.path.join(HERE, "golden", "dsl")
SMALL = dict(batch_size=10, new_size=72, crop=67, fc_width=32, niter=4, test_iters=2, batch_index=8)
STYLES = ["Detailed", "Pastel", "Melancholy", "Noir", "HDR"]


def make_caffe_root(root):
    """data/flickr_style/{train,test}.txt over 20 + 10 PNGs of 32x32 in 5 classes, a mean file, label
    files, and 'pretrained' CaffeNet weights (the notebook's deploy net at SMALL sizes, filler values)."""
    rng = np.random.RandomState(0)
    img_dir = root / "data" / "flickr_style" / "images"
    img_dir.mkdir(parents=True)
    for subset, count in (("train", 20), ("test", 10)):
        lines = []
        for i in range(count):
            label = i % 5
            base = np.array([[40, 80, 160], [200, 60, 60], [60, 200, 60], [20, 20, 20], [230, 230, 90]][label])
            pixels = np.clip(base + rng.randint(-30, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            path = img_dir / f"{subset}_{i}.png"
            Image.fromarray(pixels).save(path)
            lines.append(f"{path} {label}\n")
        (root / "data" / "flickr_style" / f"{subset}.txt").write_text("".join(lines))
    ilsvrc = root / "data" / "ilsvrc12"
    ilsvrc.mkdir(parents=True)
    (ilsvrc / "synset_words.txt").write_text("".join(f"n{i:08d} class {i}\n" for i in range(1000)))
    n = SMALL["new_size"]
    mean = np.broadcast_to(np.array([104.0, 117.0, 123.0])[:, None, None], (3, n, n)).reshape(1, 3, n, n)
    (ilsvrc / "imagenet_mean.binaryproto").write_bytes(caffe.io.array_to_blobproto(mean).SerializeToString())
    style = root / "examples" / "finetune_flickr_style"
    style.mkdir(parents=True)
    (style / "style_names.txt").write_text("".join(s + "\n" for s in STYLES + ["Vintage", "Ethereal"]))
    with open(os.path.join(DSL, "finetune_notebook.imagenet_deploy.prototxt")) as f:
        deploy = f.read().replace("dim: 227", f"dim: {SMALL['crop']}").replace(
            "num_output: 4096", f"num_output: {SMALL['fc_width']}")
    proto = root / "imagenet_deploy_small.prototxt"
    proto.write_text(deploy)
    model_dir = root / "models" / "bvlc_reference_caffenet"
    model_dir.mkdir(parents=True)
    caffe.set_random_seed(1)
    net = caffe.Net(str(proto), caffe.TEST)
    for p in net.params.values():   # 5x the fillers' weights: fc7 of O(1), far from its 0.1 biases
        p[0].data[...] *= 5
    net.save(str(model_dir / "bvlc_reference_caffenet.caffemodel"))
    return net


def same_text(ours, theirs):
    """``ours`` (what the script's str(message) wrote) is pycaffe's str() of the golden message."""
    want = pycaffe_str(theirs)
    assert ours == want, f"differs from pycaffe's text:\n{ours}"


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    root = tmp_path_factory.mktemp("caffe_root")
    pretrained = make_caffe_root(root)
    old_tmp = tempfile.tempdir
    tempfile.tempdir = str(root)          # the notebook's NamedTemporaryFile / mkdtemp files
    out = io.StringIO()
    try:
        import contextlib
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            caffe.set_random_seed(2)
            settings = dict(SMALL, caffe_root=str(root) + "/")
            ns = runpy.run_path(PORT, init_globals={"PORT_SETTINGS": settings})
    finally:
        tempfile.tempdir = old_tmp
    return ns, out.getvalue(), pretrained


def test_notebook_runs_and_its_checks_hold(notebook):
    ns, text, pretrained = notebook
    assert ns["error"] < 1e-8                                   # the notebook's fc7 check
    fc7 = ns["imagenet_net"].blobs["fc7"].data
    assert fc7.max() > 1 and fc7.std() > 0.1                   # so the check above compares real signal
    assert "Loaded style labels:\n Detailed, Pastel, Melancholy, Noir, HDR" in text
    untrained = text.split("top 5 predicted style labels =")[1].split("top 5")[0]
    assert re.findall(r"\(\d\) (\d+\.\d+)%", untrained) == ["20.00"] * 5   # zero-initialised classifier
    assert text.count("top 5 predicted ImageNet labels =") == 2
    assert "Running solvers for 4 iterations..." in text and "Accuracy, finetuned from ImageNet" in text
    shown = ns["shown"]
    assert shown.dtype == np.uint8 and shown.shape == (SMALL["crop"], SMALL["crop"], 3)


def test_training_losses_and_frozen_layers(notebook):
    ns, text, pretrained = notebook
    for name in ("pretrained", "scratch"):
        loss, acc = ns["loss"][name], ns["acc"][name]
        assert loss[0] == pytest.approx(np.log(5), rel=1e-5)   # fc8_flickr starts at zero: uniform softmax
        assert np.all(np.isfinite(loss)) and np.all((acc >= 0) & (acc <= 1))
    trained = caffe.Net(ns["style_net"](train=False), ns["style_weights"], caffe.TEST)
    for layer in ("conv1", "conv5", "fc6", "fc7"):                # lr_mult 0: the pretrained values stay
        np.testing.assert_array_equal(trained.params[layer][0].data, pretrained.params[layer][0].data)
    assert np.abs(trained.params["fc8_flickr"][0].data).max() > 0
    ft = caffe.Net(ns["style_net"](train=False), ns["style_weights_ft"], caffe.TEST)
    assert not np.array_equal(ft.params["conv1"][0].data, pretrained.params["conv1"][0].data)


def test_accuracies_are_batch_fractions(notebook):
    ns, text, _ = notebook
    unit = 1.0 / (SMALL["batch_size"] * SMALL["test_iters"])
    for key in ("accuracy", "scratch_accuracy"):
        a = float(ns[key])
        assert 0 <= a <= 1 and abs(a / unit - round(a / unit)) < 1e-4
    assert re.search(r"Accuracy, trained from ImageNet initialization: \d+\.\d%", text)


@pytest.mark.parametrize("entry,call", [
    ("imagenet_deploy", None), ("untrained_style", ("style_net", dict(train=False, subset="train"))),
    ("style_train", ("style_net", dict(train=True))), ("style_test", ("style_net", dict(train=False))),
    ("style_train_learn_all", ("style_net", dict(train=True, learn_all=True))),
    ("style_test_learn_all", ("style_net", dict(train=False, learn_all=True))),
    ("solver_train", ("solver", dict(train_net_path="/tmp/train.prototxt")))])
def test_written_prototxt_is_pycaffes_text(notebook, entry, call, tmp_path):
    ns, _, _ = notebook
    g = ns["caffenet"].__globals__
    saved = dict(g["_S"]), g["caffe_root"], tempfile.tempdir
    g["_S"].update(batch_size=50, new_size=256, crop=227, fc_width=4096)   # the notebook's own sizes
    g["caffe_root"] = "../"
    tempfile.tempdir = str(tmp_path)
    try:
        if call is None:
            path = g["caffenet"](data=g["L"].DummyData(shape=dict(dim=[1, 3, 227, 227])), train=False)
        else:
            path = g[call[0]](**call[1])
    finally:
        g["_S"].clear()
        g["_S"].update(saved[0])
        g["caffe_root"], tempfile.tempdir = saved[1], saved[2]
    with open(path) as f, open(os.path.join(DSL, f"finetune_notebook.{entry}.prototxt")) as want:
        same_text(f.read(), want.read())
