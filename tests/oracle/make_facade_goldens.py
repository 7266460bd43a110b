"""Goldens for the pycaffe facade (tests/test_facade_golden.py). Re-run from /work/main with

    python tests/oracle/make_facade_goldens.py          # in OUR environment

which (1) writes /tmp/recaffe_facade/<net>.caffemodel with recaffe's ``net.save`` for each net of
tests/golden/facade/ (blobs from the seed recipe below), then (2) re-runs itself inside real Caffe
(/work/shared/oracle/caffe-run python3 tests/oracle/make_facade_goldens.py --caffe), which writes
tests/golden/facade/<net>.npz holding what real pycaffe computed:

  in_<blob>            inputs fed (recipe, RandomState(seed + 1))
  topdiff_<blob>       the top diffs given to net.backward(**diffs) (small only; lossnet uses its loss)
  data_<blob>, diff_<blob>   every blob's data and diff after forward + backward (split blobs too)
  pdiff_<layer>_<i>    every parameter diff after that backward
  partial_back_<blob>  then net.backward(start='ip1', end='ip1') (ip1's bottom diff), and
  partial_pdiff_<i>    ip1's parameter diffs after it (accumulated over both backward passes)
  fwd_end_<blob>       net.forward(end='ip1') of a fresh forward (keys: the tops of ip1)
  partial_<blob>       after conv1's data was set to RandomState(seed + 2) values, forward(start='relu1')
  loaded_<blob>        the outputs of a fresh Caffe net that loaded OUR .caffemodel (step 1)
  ours_sha256          sha256 of our .caffemodel, so the test can check our writer still writes it
  meta                 JSON: blob names, layer names, inputs, outputs, top/bottom names, loss weights

resize.npz: caffe.io.resize_image of RandomState(31) images for RESIZE_CASES (in_<k>, out_<k>);
and runs tests/legacy_scripts/net_surgery.py under real pycaffe, storing what it prints in
legacy_net_surgery.stdout and the prototxt it writes (str(n.to_proto())) in legacy_net_surgery.deploy.prototxt.

Weights recipe (pure numpy, same in both environments): for each layer with blobs in net order, each
blob in Caffe's order, ``RandomState(seed).uniform(-0.5, 0.5, shape)`` from one generator.
"""
import hashlib
import json
import os
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import locations  # noqa: E402  (tests/locations.py: corpus and oracle paths)

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden", "facade")
TMP = "/tmp/recaffe_facade"
NETS = {"small": 11, "lossnet": 21}
# (input H, W, K), (new H, W), interp_order: up, down (anti-aliased), mixed, gray, same size, 1x1, nearest
RESIZE_CASES = [((5, 7, 3), (12, 9), 1), ((16, 12, 3), (7, 5), 1), ((6, 10, 3), (9, 4), 1),
                ((6, 10, 1), (3, 17), 1), ((9, 9, 3), (9, 9), 1), ((4, 6, 3), (1, 1), 1),
                ((6, 10, 3), (13, 4), 0), ((11, 8, 3), (40, 37), 1)]


def resize_inputs():
    rng = np.random.RandomState(31)
    return [(rng.uniform(-20, 300, shape).astype(np.float32), dims, order) for shape, dims, order in RESIZE_CASES]


def recipe(seed, shapes):
    rng = np.random.RandomState(seed)
    return [[rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in blob_shapes] for blob_shapes in shapes]


def inputs(seed, name, net):
    rng = np.random.RandomState(seed + 1)
    out = {}
    for b in net.inputs:
        shape = net.blobs[b].data.shape
        if b == "label":
            out[b] = rng.randint(0, 5, size=shape).astype(np.float32)
        else:
            out[b] = rng.uniform(-1, 1, shape).astype(np.float32)
    return out


def set_weights(net, seed):
    layers = [(n, net.params[n]) for n in net.params]
    values = recipe(seed, [[b.data.shape for b in blobs] for _, blobs in layers])
    for (_, blobs), vals in zip(layers, values):
        for b, v in zip(blobs, vals):
            b.data[...] = v


def ours():
    sys.path.insert(0, os.path.join(HERE, "..", ".."))
    import recaffe
    os.makedirs(TMP, exist_ok=True)
    for name, seed in NETS.items():
        net = recaffe.Net(os.path.join(GOLDEN, name + ".prototxt"), recaffe.TEST)
        set_weights(net, seed)
        net.save(os.path.join(TMP, name + ".caffemodel"))
    subprocess.check_call([locations.CAFFE_RUN, "python3", "tests/oracle/make_facade_goldens.py",
                           "--caffe"], cwd=os.path.join(HERE, "..", ".."))


def caffe_side():
    import caffe
    caffe.set_mode_cpu()
    for name, seed in NETS.items():
        proto = os.path.join(GOLDEN, name + ".prototxt")
        net = caffe.Net(proto, caffe.TEST)
        set_weights(net, seed)
        rec = {}
        feed = inputs(seed, name, net)
        for k, v in feed.items():
            rec["in_" + k] = v
        net.forward(**feed)
        if name == "small":
            rng = np.random.RandomState(seed + 3)
            diffs = {o: rng.uniform(-1, 1, net.blobs[o].data.shape).astype(np.float32) for o in net.outputs}
            for k, v in diffs.items():
                rec["topdiff_" + k] = v
            net.backward(**diffs)
        else:
            net.backward()
        for b, blob in net.blobs.items():
            rec["data_" + b] = blob.data.copy()
            rec["diff_" + b] = blob.diff.copy()
        for layer, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                rec["pdiff_%s_%d" % (layer, i)] = blob.diff.copy()
        for k, v in net.backward(start="ip1", end="ip1").items():
            rec["partial_back_" + k] = v.copy()
        for i, blob in enumerate(net.params["ip1"]):
            rec["partial_pdiff_%d" % i] = blob.diff.copy()
        out = net.forward(end="ip1", **feed)
        for k, v in out.items():
            rec["fwd_end_" + k] = v.copy()
        net.forward(**feed)
        net.blobs["conv1"].data[...] = np.random.RandomState(seed + 2).uniform(
            -1, 1, net.blobs["conv1"].data.shape).astype(np.float32)
        for k, v in net.forward(start="relu1").items():
            rec["partial_" + k] = v.copy()
        path = os.path.join(TMP, name + ".caffemodel")
        loaded = caffe.Net(proto, caffe.TEST, weights=path)
        for k, v in loaded.forward(**feed).items():
            rec["loaded_" + k] = v.copy()
        with open(path, "rb") as f:
            rec["ours_sha256"] = np.array(hashlib.sha256(f.read()).hexdigest())
        meta = dict(blobs=list(net.blobs), layers=list(net._layer_names), inputs=list(net.inputs),
                    outputs=list(net.outputs), top_names={k: list(v) for k, v in net.top_names.items()},
                    bottom_names={k: list(v) for k, v in net.bottom_names.items()},
                    loss_weights={k: float(v) for k, v in net.blob_loss_weights.items()},
                    layer_types=[l.type for l in net.layers], fwd_end_keys=sorted(out))
        rec["meta"] = np.array(json.dumps(meta))
        np.savez_compressed(os.path.join(GOLDEN, name + ".npz"), **rec)
        print("wrote", name, len(rec), "arrays")
    legacy()
    rec = {}
    for k, (im, dims, order) in enumerate(resize_inputs()):
        rec["in_%d" % k] = im
        rec["out_%d" % k] = caffe.io.resize_image(im, dims, interp_order=order)
    np.savez_compressed(os.path.join(GOLDEN, "resize.npz"), **rec)


def legacy():
    out_dir = os.path.join(TMP, "legacy")
    os.makedirs(out_dir, exist_ok=True)
    script = os.path.join(HERE, "..", "legacy_scripts", "net_surgery.py")
    text = subprocess.check_output([sys.executable, script, out_dir]).decode()
    with open(os.path.join(GOLDEN, "legacy_net_surgery.stdout"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "deploy.prototxt")) as src, \
            open(os.path.join(GOLDEN, "legacy_net_surgery.deploy.prototxt"), "w") as dst:
        dst.write(src.read())
    print("wrote legacy_net_surgery.stdout,", len(text.splitlines()), "lines")


if __name__ == "__main__":
    caffe_side() if "--caffe" in sys.argv else ours()
