"""The pycaffe facade against real pycaffe: the same nets, weights, inputs and top diffs give the same blob
data, blob diffs (in-place chains, split branches), parameter diffs, forward(end=) / forward(start=)
results and bookkeeping (blob, layer, top/bottom names, loss weights); and the .caffemodel our
``net.save`` writes is the file real Caffe loaded to produce the recorded outputs.
Goldens: tests/oracle/make_facade_goldens.py."""
import hashlib
import json
import os
import sys

import numpy as np
import pytest

import recaffe as caffe

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "facade")
sys.path.insert(0, os.path.join(HERE, "oracle"))
import make_facade_goldens as recipe  # noqa: E402

NETS = sorted(recipe.NETS)


def golden(name):
    with np.load(os.path.join(GOLDEN, name + ".npz")) as z:
        g = {k: z[k] for k in z.files}
    return g, json.loads(str(g["meta"]))


def build(name):
    net = caffe.Net(os.path.join(GOLDEN, name + ".prototxt"), caffe.TEST)
    recipe.set_weights(net, recipe.NETS[name])
    return net


def close(ours, theirs, what):
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, Caffe {theirs.shape}"
    scale = max(float(np.abs(theirs).max()), 1e-3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * scale, err_msg=what)


def feed_of(g):
    return {k[3:]: v for k, v in g.items() if k.startswith("in_")}


@pytest.mark.parametrize("name", NETS)
def test_bookkeeping_matches_pycaffe(name):
    g, meta = golden(name)
    net = build(name)
    assert list(net.blobs) == meta["blobs"]
    assert net._layer_names == meta["layers"]
    assert [l.type for l in net.layers] == meta["layer_types"]
    assert net.inputs == meta["inputs"] and net.outputs == meta["outputs"]
    assert {k: list(v) for k, v in net.top_names.items()} == meta["top_names"]
    assert {k: list(v) for k, v in net.bottom_names.items()} == meta["bottom_names"]
    assert dict(net.blob_loss_weights) == meta["loss_weights"]
    assert list(net.layer_dict) == meta["layers"]


@pytest.mark.parametrize("name", NETS)
def test_forward_backward_matches_pycaffe(name):
    g, meta = golden(name)
    net = build(name)
    feed = feed_of(g)
    net.forward(**feed)
    top_diffs = {k[len("topdiff_"):]: v for k, v in g.items() if k.startswith("topdiff_")}
    net.backward(**top_diffs)
    for b in meta["blobs"]:
        close(net.blobs[b].data, g["data_" + b], f"{name}: data of '{b}'")
        close(net.blobs[b].diff, g["diff_" + b], f"{name}: diff of '{b}'")
    for layer, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            close(blob.diff, g["pdiff_%s_%d" % (layer, i)], f"{name}: diff of param {layer}[{i}]")
    part = net.backward(start="ip1", end="ip1")
    assert sorted(part) == sorted(k[len("partial_back_"):] for k in g if k.startswith("partial_back_"))
    for k, v in part.items():
        close(v, g["partial_back_" + k], f"{name}: backward(start='ip1', end='ip1')['{k}']")
    for i, blob in enumerate(net.params["ip1"]):
        close(blob.diff, g["partial_pdiff_%d" % i], f"{name}: ip1[{i}] diff after the partial backward")


@pytest.mark.parametrize("name", NETS)
def test_partial_forward_matches_pycaffe(name):
    g, meta = golden(name)
    net = build(name)
    feed = feed_of(g)
    out = net.forward(end="ip1", **feed)
    assert sorted(out) == meta["fwd_end_keys"]
    for k, v in out.items():
        close(v, g["fwd_end_" + k], f"{name}: forward(end='ip1')['{k}']")
    net.forward(**feed)
    conv1 = net.blobs["conv1"].data
    conv1[...] = np.random.RandomState(recipe.NETS[name] + 2).uniform(-1, 1, conv1.shape).astype(np.float32)
    out = net.forward(start="relu1")
    assert sorted(out) == sorted(meta["outputs"])
    for k, v in out.items():
        close(v, g["partial_" + k], f"{name}: forward(start='relu1')['{k}']")


@pytest.mark.parametrize("name", NETS)
def test_saved_caffemodel_is_what_caffe_loaded(name, tmp_path):
    g, meta = golden(name)
    net = build(name)
    path = tmp_path / (name + ".caffemodel")
    net.save(str(path))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == str(g["ours_sha256"]), \
        "net.save no longer writes the file real Caffe was checked to load"
    out = net.forward(**feed_of(g))
    for k in meta["outputs"]:
        close(out[k], g["loaded_" + k], f"{name}: output '{k}' vs Caffe with our .caffemodel")
    again = caffe.Net(os.path.join(GOLDEN, name + ".prototxt"), str(path), caffe.TEST)
    for k, v in again.forward(**feed_of(g)).items():
        close(v, g["loaded_" + k], f"{name}: reloaded '{k}'")
