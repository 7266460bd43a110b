"""Forward time of fork nets at batch 1 against OpenCV DNN (cv2.dnn, the runtime many Caffe users moved
to for SSD inference), in one process: MobileNet-SSD deploy by default, also VGG-SSD, ShuffleNet v2 and
Xception-dw from the corpus.

    python bench/bench_forks.py [--nets mobilenet_ssd,vgg_ssd,shufflenet,xception] [--iters N]
        [--rounds R] [--threads T] [--temper F]

Both sides get the same seeded random weights (tests/fork_oracle.py: written by our Net.save_weights,
read by cv2.dnn.readNetFromCaffe) and the same input; ours runs under torch.no_grad() (inference).
Each round times N forwards of each side (after one untimed forward of each; the side that goes first
alternates) and keeps each side's median; printed: ms per forward of the best round of each side, and
the median (range) of the per-round OpenCV/ours ratios (> 1: ours faster). ``--temper`` scales the
SSD confidence heads (1: the raw random weights, whose scores pass the confidence threshold in
numbers a trained net rarely gives; 0.3: fewer candidates for DetectionOutput's NMS).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
from corpus import corpus_file  # noqa: E402
from fork_oracle import seed_weights, temper_ssd_confidences  # noqa: E402
from recaffe.netspec.net.net import Net  # noqa: E402

NETS = {"mobilenet_ssd": "chuanqi305__MobileNet-SSD/deploy.prototxt",
        "vgg_ssd": "xzgz__caffe-ssd/models__VGGNet__VOC0712__SSD_300x300__deploy.prototxt",
        "shufflenet": "farmingyard__ShuffleNet/shufflenet_v2_1x_deploy.prototxt",
        "xception": "soeaver__caffe-model/cls__inception__deploy_xception-dw.prototxt"}


def timed(fn, iters):
    out = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def bench(name, iters, rounds, temper, folder):
    import cv2
    proto = corpus_file(NETS[name])
    net = temper_ssd_confidences(seed_weights(Net(proto)), temper)
    model = os.path.join(folder, name + ".caffemodel")
    net.save_weights(model)
    cv = cv2.dnn.readNetFromCaffe(proto, model)
    x = np.random.default_rng(1).uniform(-1, 1, net.blob_shapes[net.inputs[0]]).astype(np.float32)
    xt = torch.from_numpy(x)

    def ours():
        with torch.no_grad():
            net(**{net.inputs[0]: xt})

    def theirs():
        cv.setInput(x)
        cv.forward()
    ours(), theirs()
    best, ratios = [float("inf")] * 2, []
    for r in range(rounds):
        sides = [ours, theirs] if r % 2 == 0 else [theirs, ours]
        t = {}
        for fn in sides:
            fn()                                  # untimed
            t[fn] = timed(fn, iters)
        best = [min(best[0], t[ours]), min(best[1], t[theirs])]
        ratios.append(t[theirs] / t[ours])
    return best, ratios


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nets", default="mobilenet_ssd")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch and OpenCV threads (0: their defaults)")
    ap.add_argument("--temper", type=float, default=1.0)
    a = ap.parse_args()
    import cv2
    if a.threads:
        torch.set_num_threads(a.threads)
        cv2.setNumThreads(a.threads)
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), OpenCV {cv2.__version__} "
          f"({cv2.getNumThreads()} threads), load average {os.getloadavg()[0]:.1f}")
    print("| net | batch | ours ms | OpenCV ms | OpenCV/ours (median of rounds, range) |")
    print("|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in a.nets.split(","):
            (o, c), ratios = bench(name, a.iters, a.rounds, a.temper, folder)
            print(f"| {name} | 1 | {o * 1e3:.1f} | {c * 1e3:.1f} | {statistics.median(ratios):.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f}) |", flush=True)


if __name__ == "__main__":
    main()
