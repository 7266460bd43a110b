"""Input reshape + forward of GoogLeNet through the pycaffe facade at three input sizes, before and after
the facade stopped rebuilding the net on every input shape change.

    python bench/bench_reshape.py [--rounds R] [--threads T] [--before-ref REF]

What a deepdream-style script does: ``net.blobs['data'].reshape(1, 3, h, w)``, fill it, and
``net.forward(end=END)``, cycling through sizes. Timed per size (ms), as the mean over R rounds of the
cycle (each round visits every size once, so every call changes the input shape):

  * reshape      net.blobs['data'].reshape + net.reshape() (Net::Reshape: set-up only)
  * reshape+fwd  net.blobs['data'].reshape + forward(end=END)

"before" is the facade of commit REF (default 414e2dc, the last one that rebuilt the net: a new
netspec.Net with the new Input shapes and share_with the old parameters), loaded from git beside the
current runtime; "after" is the current facade (layers set up for the new shapes as they run, variants
cached). The old facade rebuilt every layer, and GoogLeNet's loss3/classifier weights fix the input
size to 224, so "before" can only run the net cut at END (inception_4c/output, the deepdream notebook's
layer); "after" is timed on that cut net and on the whole deploy net with forward(end=END), which the
old facade could not run at other sizes. Batch 1, random weights (the zoo deploy's fillers).
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import recaffe  # noqa: E402
from recaffe.protos import caffe_pb2  # noqa: E402
from recaffe.protos.io import read_net  # noqa: E402

DEPLOY = os.path.join(ROOT, "models", "zoo", "bvlc_googlenet", "deploy.prototxt")
END = "inception_4c/output"
SIZES = ((224, 224), (160, 200), (320, 288))


def cut_net(path, end, out_dir):
    """The deploy net up to the layer whose top is ``end`` (what a dream over END needs)."""
    net = read_net(path)
    keep = caffe_pb2.NetParameter()
    keep.CopyFrom(net)
    del keep.layer[:]
    for layer in net.layer:
        keep.layer.add().CopyFrom(layer)
        if end in layer.top and layer.type == "Concat":
            break
    out = os.path.join(out_dir, "googlenet_to_4c.prototxt")
    with open(out, "w") as f:
        f.write(str(keep))
    return out


def old_facade(ref):
    """recaffe.net.Net as of ``ref`` (git show), as a module of the recaffe package."""
    src = subprocess.run(["git", "-C", ROOT, "show", f"{ref}:recaffe/net.py"], check=True, capture_output=True,
                         text=True).stdout
    path = os.path.join(tempfile.mkdtemp(), "_bench_old_net.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("recaffe._bench_old_net", path)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "recaffe"
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.Net


def time_cycle(make_net, rounds, end, whole=False):
    """{size: (reshape ms, reshape+forward ms)}: ``rounds`` cycles through SIZES after one warm-up cycle,
    each step changing the input shape; Net.reshape() and forward(end) are timed in separate cycles.
    ``whole``: the whole deploy net, whose Net.reshape() at other sizes fails past END (as Caffe's)."""
    net = make_net()
    rng = np.random.RandomState(0)
    images = {s: rng.uniform(-50, 50, (1, 3) + s).astype(np.float32) for s in SIZES}
    out = {s: ([], []) for s in SIZES}
    runs = ((0, lambda s: net.reshape()), (1, lambda s: net.forward(end=end)))
    for column, run in runs[1:] if whole else runs:
        for r in range(rounds + 1):
            for s in SIZES:
                t0 = time.perf_counter()
                net.blobs["data"].reshape(1, 3, *s)
                net.blobs["data"].data[...] = images[s]
                run(s)
                if r:
                    out[s][column].append((time.perf_counter() - t0) * 1e3)
    return {s: (float(np.mean(a)) if a else float("nan"), float(np.mean(b))) for s, (a, b) in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--before-ref", default="414e2dc")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = tempfile.mkdtemp()
    cut = cut_net(DEPLOY, END, work)
    recaffe.set_random_seed(0)
    Old = old_facade(args.before_ref)
    rows = [("before: cut net (rebuild)", lambda: Old(cut, recaffe.TEST), None, False),
            ("after: cut net", lambda: recaffe.Net(cut, recaffe.TEST), None, False),
            ("after: whole deploy, forward(end)", lambda: recaffe.Net(DEPLOY, recaffe.TEST), END, True)]
    results = {}
    for label, make, end, whole in rows:
        results[label] = time_cycle(make, args.rounds, end, whole)
    print(f"GoogLeNet, batch 1, {args.threads} threads, mean of {args.rounds} rounds; ms: reshape | reshape+forward")
    print(f"{'':36s}" + "".join(f"{f'{h}x{w}':>22s}" for h, w in SIZES))
    for label, res in results.items():
        print(f"{label:36s}" + "".join(f"{res[s][0]:10.1f} |{res[s][1]:9.1f}" for s in SIZES))
    before, after = results[rows[0][0]], results[rows[1][0]]
    print(f"{'before/after (cut net)':36s}" + "".join(
        f"{before[s][0] / after[s][0]:9.1f}x |{before[s][1] / after[s][1]:8.2f}x" for s in SIZES))


if __name__ == "__main__":
    main()
