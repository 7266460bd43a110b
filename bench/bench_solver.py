"""One SGD training iteration of CaffeNet (batch 10, 227x227), recaffe vs real Caffe, in one run.

    python bench/bench_solver.py [--iters 4] [--no-write]

Two settings: all layers learning (learn_all) and only the classifier learning (conv1..fc7 with
lr_mult 0, as the BVLC fine-tuning notebook's ``learn_all=False``). The net is the BVLC reference
CaffeNet deploy prototxt with gaussian fillers, an Input label and SoftmaxWithLoss; each side runs in
its own process (Caffe's through the oracle: pycaffe, ``solver.step(1)`` on fed blobs; ours: the
recaffe Solver fed the same way), one warm-up iteration then ``--iters`` timed ones; peak memory is the
process's maximum resident set size. Wall time (mean and best iteration) and process CPU time
are both reported: on a shared machine CPU time is the steadier comparison at 1 thread. Prints a
table and ratios and appends it, dated, to
bench/results_solver.md.
"""
import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import locations  # noqa: E402  (tests/locations.py: corpus and oracle paths)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEPLOY = locations.corpus_path("BVLC__caffe", "models__bvlc_reference_caffenet__deploy.prototxt")
ORACLE = locations.CAFFE_RUN
BATCH = 10


def net_text(learn_all):
    """CaffeNet deploy -> trainable: fillers, label input, loss; frozen layers get lr_mult 0."""
    sys.path.insert(0, ROOT) if ROOT not in sys.path else None
    from google.protobuf import text_format
    try:
        from recaffe.protos import caffe_pb2
    except ImportError:          # inside the oracle
        from caffe.proto import caffe_pb2
    net = caffe_pb2.NetParameter()
    text_format.Merge(open(DEPLOY).read(), net)
    del net.input[:], net.input_dim[:], net.input_shape[:]
    layers = list(net.layer)
    del net.layer[:]
    data = net.layer.add(name="data", type="Input", top=["data"])
    data.input_param.shape.add(dim=[BATCH, 3, 227, 227])
    label = net.layer.add(name="label", type="Input", top=["label"])
    label.input_param.shape.add(dim=[BATCH])
    for lp in layers:
        if lp.type in ("Input", "Softmax"):
            continue
        if lp.type in ("Convolution", "InnerProduct"):
            p = lp.convolution_param if lp.type == "Convolution" else lp.inner_product_param
            p.weight_filler.type, p.weight_filler.std = "gaussian", 0.01
            p.bias_filler.type, p.bias_filler.value = "constant", 0.1
            del lp.param[:]
            frozen = not learn_all and lp.name != "fc8"
            lp.param.add(lr_mult=0 if frozen else 1, decay_mult=1)
            lp.param.add(lr_mult=0 if frozen else 2, decay_mult=0)
        net.layer.add().CopyFrom(lp)
    net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=["fc8", "label"], top=["loss"])
    return text_format.MessageToString(net)


SOLVER = ('net: "{net}"\nbase_lr: 0.001 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.0005 '
          'max_iter: 100000 display: 0 random_seed: 1 solver_mode: CPU\n')


def inputs():
    import numpy as np
    rng = np.random.RandomState(0)
    return (rng.randn(BATCH, 3, 227, 227).astype(np.float32) * 50,
            rng.randint(0, 1000, size=BATCH).astype(np.float32))


def prepare(learn_all):
    """Net and solver files in a /tmp folder (the oracle sees /tmp and the repository only)."""
    tmp = tempfile.mkdtemp(prefix="bench_solver_")
    with open(os.path.join(tmp, "net.prototxt"), "w") as f:
        f.write(net_text(learn_all))
    with open(os.path.join(tmp, "solver.prototxt"), "w") as f:
        f.write(SOLVER.format(net=os.path.join(tmp, "net.prototxt")))
    return tmp


def worker(side, folder, iters):
    """Runs in a fresh process; prints one JSON line."""
    solver_path = os.path.join(folder, "solver.prototxt")
    data, label = inputs()
    if side == "caffe":
        import caffe
        caffe.set_mode_cpu()
        solver = caffe.get_solver(solver_path)

        def step():
            solver.net.blobs["data"].data[...] = data
            solver.net.blobs["label"].data[...] = label
            solver.step(1)
    else:
        sys.path.insert(0, ROOT)
        from recaffe.solver.solver import Solver
        solver = Solver(solver_path, feed=lambda net, phase, it: {"data": data, "label": label})

        def step():
            solver.step(1)
    step()   # warm-up
    walls, cpus = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {"ms": sum(walls) * 1e3 / iters, "min_ms": min(walls) * 1e3, "cpu_ms": sum(cpus) * 1e3 / iters,
           "rss_mb": rss}
    if side == "ours":   # the backward pass alone: a frozen prefix should cost none
        import torch
        net, bwd = solver.net, 0.0
        for _ in range(2):
            net(data=torch.as_tensor(data), label=torch.as_tensor(label))
            t1 = time.perf_counter()
            net.backward()
            bwd += time.perf_counter() - t1
            for q in solver.learnable:
                q.grad = None
        out["bwd_ms"] = bwd * 1e3 / 2
    print(json.dumps(out))


def run_side(side, folder, iters, threads):
    args = [os.path.relpath(__file__, ROOT), "--worker", side, "--dir", folder, "--iters", str(iters)]
    env_vars = [f"{v}={threads}" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")]
    # the oracle starts from an empty environment: pass the thread settings through `env`
    cmd = ([ORACLE, "env"] + env_vars + ["python3"] if side == "caffe" else [sys.executable]) + args
    env = dict(os.environ, **dict(v.split("=") for v in env_vars))
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{side} worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--worker", choices=["caffe", "ours"])
    ap.add_argument("--dir")
    ap.add_argument("--threads", type=int, default=1,
                    help="OMP/OpenBLAS/MKL threads for both sides (default 1: stable on a shared machine)")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.dir, a.iters)
    rows, load = [], os.getloadavg()[0]
    for learn_all in (True, False):
        folder = prepare(learn_all)
        c = run_side("caffe", folder, a.iters, a.threads)
        o = run_side("ours", folder, a.iters, a.threads)
        shutil.rmtree(folder, ignore_errors=True)
        rows.append(("all layers learning" if learn_all else "classifier only (learn_all=False)", c, o))
    lines = [f"## {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC: CaffeNet batch {BATCH}, 1 SGD iteration, "
             f"CPU ({os.cpu_count()} cores, shared), {a.threads} thread(s) per side, {a.iters} timed iterations after "
             f"1 warm-up, load average at start {load:.1f}",
             "", "| setting | Caffe ms/iter (min) | recaffe ms/iter (min) | speed ratio (Caffe/ours, mean / min) | "
             "CPU ms/iter Caffe / ours | CPU-time ratio | Caffe peak RSS MB | recaffe peak RSS MB | "
             "memory ratio (ours/Caffe) | recaffe backward ms |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c, o in rows:
        lines.append(f"| {name} | {c['ms']:.0f} ({c['min_ms']:.0f}) | {o['ms']:.0f} ({o['min_ms']:.0f}) | "
                     f"{c['ms'] / o['ms']:.2f}x / {c['min_ms'] / o['min_ms']:.2f}x | {c['cpu_ms']:.0f} / "
                     f"{o['cpu_ms']:.0f} | {c['cpu_ms'] / o['cpu_ms']:.2f}x | {c['rss_mb']:.0f} | "
                     f"{o['rss_mb']:.0f} | {o['rss_mb'] / c['rss_mb']:.2f} | {o['bwd_ms']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not a.no_write:
        path = os.path.join(HERE, "results_solver.md")
        new = not os.path.exists(path)
        with open(path, "a") as f:
            if new:
                f.write("# Solver benchmark: recaffe vs Caffe (bench/bench_solver.py)\n\n"
                        "Targets: >= 1.5x Caffe's speed with all layers learning, >= 2x with only the classifier "
                        "learning; peak memory no more than Caffe's.\n\n")
            f.write(text + "\n")


if __name__ == "__main__":
    main()
