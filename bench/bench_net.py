"""Forward and forward+backward time of netspec.Net against real Caffe (`caffe time`, through the oracle)
and against hand-written torch models (bench/torch_models.py), on the CaffeNet, GoogLeNet and
ResNet-50 deploy nets (batch 10, 10, 1).

    python bench/bench_net.py [--iters N] [--rounds R] [--threads T] [--no-caffe] [--nets caffenet,...]

Ours and the hand-written model get the same random weights and input; forward is timed under
torch.no_grad() (inference). Forward+backward is the backward pass a training step makes, the same
work on both sides: parameter gradients and the gradient of every blob except the input blob, seeded
by a top diff on the output. `caffe time` on a bare deploy net would not do that: with no loss in the
net every layer logs "does not need backward computation", no bottom diff is propagated and only the
parameter gradients are computed (from zero top diffs), about a third less arithmetic. So the Caffe
net gets `loss_weight: 1` on its output top (the log then says every layer but the input "needs
backward computation"; the input blob needs none, as ours). `--input-grad` times instead the pass with
the input blob's gradient too (Caffe with `force_backward: true`, ours and torch with an input that
requires grad); `--caffe-params-only` adds Caffe's time on the bare deploy net for reference.

R rounds: each times N iterations of ours and of torch (after one untimed iteration of each; the
side that goes first alternates), then one `caffe time -iterations N` run (Caffe reports its own averages). Prints ms per iteration of the best round of
each, their ratios, and the median (range) of the per-round Caffe/ours ratios, which pair times taken
minutes apart at most (this VM's speed drifts by 20-35% over a run).
"""
import argparse
import copy
import itertools
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench"), os.path.join(ROOT, "tests", "oracle")]
import net_recipe  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import locations  # noqa: E402  (tests/locations.py: corpus and oracle paths)
import torch_models  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from recaffe.netspec import Net  # noqa: E402
from recaffe.protos.io import read_net  # noqa: E402

CAFFE_RUN = locations.CAFFE_RUN
NETS = {"caffenet": (10, 3, 227, 227), "googlenet": (10, 3, 224, 224), "resnet50": (1, 3, 224, 224)}


def build(name, shape):
    param = net_recipe.set_input_shape(read_net(os.path.join(ROOT, "tests", "golden", "net", "models",
                                                             name + ".prototxt")), shape)
    net = Net(param)
    torch.manual_seed(0)
    with torch.no_grad():
        for t, layer in zip(net.layer_types, net.layers):
            for i, p in enumerate(layer.blobs):
                if t == "BatchNorm":
                    p.copy_(torch.ones_like(p) if i == 2 else torch.rand_like(p) + 0.5)
                elif p.dim() > 1:
                    p.normal_(0, (2.0 / p[0].numel()) ** 0.5)
                else:
                    p.normal_(0, 0.1)
    hand = torch_models.load_from_net(torch_models.MODELS[name](), net).eval()
    return param, net, hand


def timed(fn, iters):
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t) / iters * 1000


def bench_torch(net, hand, shape, iters, input_grad=False):
    x = torch.randn(shape)
    xg = x.clone().requires_grad_(input_grad)   # forward+backward: the input's gradient only with --input-grad
    out_name = net.outputs[0]
    g = torch.randn(net.blob_shapes[out_name]).reshape(-1)

    def ours_fwd():
        with torch.no_grad():
            net(data=x)

    def hand_fwd():
        with torch.no_grad():
            hand(x)

    def ours_fb():
        net.zero_grad(set_to_none=True)
        xg.grad = None
        (net(data=xg)[out_name].reshape(-1) * g).sum().backward()

    def hand_fb():
        hand.zero_grad(set_to_none=True)
        xg.grad = None
        (hand(xg).reshape(-1) * g).sum().backward()

    pairs = (("fwd", ours_fwd, hand_fwd), ("fwdbwd", ours_fb, hand_fb))
    rounds = itertools.count()

    def one_round():
        """{key: (ours ms, torch ms)} of one round of `iters` iterations each, after one untimed
        iteration of each (the Caffe run in between leaves the caches and the allocator cold); which
        side goes first alternates between rounds."""
        swap = next(rounds) % 2
        res = {}
        for key, a, b in pairs:
            a(), b()
            if swap:
                tb, ta = timed(b, iters), timed(a, iters)
            else:
                ta, tb = timed(a, iters), timed(b, iters)
            res[key] = (ta, tb)
        return res
    return one_round


def bench_caffe(param, iters, threads, mode="loss"):
    """`caffe time` on `param`: mode "loss" puts loss_weight 1 on the output top (a training step's
    backward: every blob's diff but the input's), "force" sets force_backward (the input's diff too),
    "plain" leaves the deploy net as it is (parameter gradients only)."""
    param = copy.deepcopy(param)
    if mode == "loss":
        assert param.layer[-1].type == "Softmax", param.layer[-1].type
        param.layer[-1].loss_weight.append(1.0)      # the last layer makes the output blob (prob)
    elif mode == "force":
        param.force_backward = True
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", dir="/tmp", delete=False) as f:
        f.write(text_format.MessageToString(param))
    try:
        out = subprocess.run([CAFFE_RUN, "env", f"OPENBLAS_NUM_THREADS={threads}", f"OMP_NUM_THREADS={threads}",
                              "caffe", "time", "-model", f.name, "-iterations", str(iters)],
                             capture_output=True, text=True, cwd=ROOT,
                             env=dict(os.environ, GLOG_minloglevel="0"))   # caffe time logs at INFO
    finally:
        os.unlink(f.name)
    text = out.stdout + out.stderr
    fwd = re.search(r"Average Forward pass: ([\d.]+) ms", text)
    fb = re.search(r"Average Forward-Backward: ([\d.]+) ms", text)
    if not (fwd and fb):
        raise RuntimeError("caffe time failed:\n" + text[-2000:])
    return float(fwd.group(1)), float(fb.group(1))


def net_flops(net):
    """Multiply-add FLOPs (2 per MAC) of the net's Convolution and InnerProduct layers, one forward."""
    total = 0
    for t, layer, s in zip(net.layer_types, net.layers, net.steps):
        if t == "Convolution":
            w = layer.blobs[0]
            total += 2 * math.prod(net.blob_shapes[s.tops[0]]) * w[0].numel()
        elif t == "InnerProduct":
            total += 2 * math.prod(net.blob_shapes[s.tops[0]]) * layer.K
    return total


def sgemm_peak(threads):
    """Best GFLOP/s of a 2048^3 float32 matrix product here (an upper bound for any convolution)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = float("inf")
    for _ in range(20):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * 2048 ** 3 / best / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-caffe", action="store_true")
    ap.add_argument("--input-grad", action="store_true",
                    help="forward+backward with the input blob's gradient (Caffe force_backward: true)")
    ap.add_argument("--caffe-params-only", action="store_true",
                    help="also time Caffe's forward+backward without force_backward (parameter gradients only)")
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch threads, and OPENBLAS/OMP_NUM_THREADS for Caffe")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per iteration; forward+backward "
          + ("with the input blob's gradient (Caffe: force_backward)" if args.input_grad else
             "as in training, no input gradient (Caffe: loss_weight 1 on the output)"))
    print(f"{'net':10} {'batch':>5} | {'fwd ours':>9} {'torch':>8} {'caffe':>8} {'caffe/ours':>10} "
          f"{'ours/torch':>10} | {'f+b ours':>9} {'torch':>8} {'caffe':>8} {'caffe/ours':>10} {'ours/torch':>10}")
    peak = sgemm_peak(args.threads)
    bounds = []
    for name in args.nets.split(","):
        shape = NETS[name]
        param, net, hand = build(name, shape)
        flops = net_flops(net)
        one_round = bench_torch(net, hand, shape, args.iters, args.input_grad)
        # R rounds; each round times ours and torch, then one `caffe time -iterations N` run, so the
        # paired ratios of a round share the machine's state (its speed drifts by 20-35% over minutes)
        rounds, caffe = [], []
        mode = "force" if args.input_grad else "loss"
        for _ in range(args.rounds):
            rounds.append(one_round())
            if not args.no_caffe:
                caffe.append(bench_caffe(param, args.iters, args.threads, mode))
        del net, hand, one_round
        of, hf = (min(r["fwd"][i] for r in rounds) for i in (0, 1))
        ofb, hfb = (min(r["fwdbwd"][i] for r in rounds) for i in (0, 1))
        cf = cfb = float("nan")
        if caffe:
            cf, cfb = min(c[0] for c in caffe), min(c[1] for c in caffe)
            if args.caffe_params_only:
                po = min(bench_caffe(param, args.iters, args.threads, "plain")[1] for _ in range(args.rounds))
                print(f"{name:10} caffe f+b without force_backward (parameter gradients only): {po:.1f} ms")
        print(f"{name:10} {shape[0]:>5} | {of:9.1f} {hf:8.1f} {cf:8.1f} {cf / of:10.2f} {of / hf:10.3f} | "
              f"{ofb:9.1f} {hfb:8.1f} {cfb:8.1f} {cfb / ofb:10.2f} {ofb / hfb:10.3f}", flush=True)
        tf = statistics.median(r["fwd"][0] / r["fwd"][1] for r in rounds)
        tb = statistics.median(r["fwdbwd"][0] / r["fwdbwd"][1] for r in rounds)
        print(f"{'':10} {'':5} | ours/torch per round: fwd median {tf:.3f}, f+b median {tb:.3f}", flush=True)
        if caffe:
            pf = sorted(c[0] / r["fwd"][0] for r, c in zip(rounds, caffe))
            pb = sorted(c[1] / r["fwdbwd"][0] for r, c in zip(rounds, caffe))
            print(f"{'':10} {'':5} | caffe/ours per round: fwd median {statistics.median(pf):.2f} "
                  f"({pf[0]:.2f}-{pf[-1]:.2f}), f+b median {statistics.median(pb):.2f} ({pb[0]:.2f}-{pb[-1]:.2f})",
                  flush=True)
        bounds.append((name, flops, of, cf, ofb, cfb))
    peak = max(peak, sgemm_peak(args.threads))    # best of before and after: the machine is shared
    print(f"\nRoofline: sgemm peak {peak:.0f} GFLOP/s at {args.threads} thread(s). Convolution + InnerProduct "
          "arithmetic alone, at that peak, bounds the time from below (forward x1, forward+backward x3):")
    print(f"{'net':10} {'GFLOP fwd':>9} {'floor fwd':>9} {'ours GFLOP/s':>12} {'best caffe/ours fwd':>19} "
          f"{'best caffe/ours f+b':>19}")
    for name, flops, of, cf, ofb, cfb in bounds:
        floor = flops / peak / 1e6      # ms for the conv/fc arithmetic alone at the sgemm peak
        print(f"{name:10} {flops / 1e9:9.2f} {floor:9.1f} {flops / of / 1e6:12.0f} {cf / floor:19.2f} "
              f"{cfb / (3 * floor):19.2f}")


if __name__ == "__main__":
    main()
