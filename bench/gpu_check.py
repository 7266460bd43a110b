"""The GPU acceptance checks of the scale-out work, as one run (driven by bench/gpu_check.sh).

    python bench/gpu_check.py [--cpu-dry-run] [--only zoo,train,multi,amp,speed] [--out DIR]

1. zoo: every zoo deploy net (random weights, batch 2) on CUDA equals its CPU output (1e-4).
2. train: ``caffe train -gpu 0`` on the LeNet recipe (generated LMDB) with deterministic cuDNN gives
   the CPU run's loss curve.
3. multi: ``caffe train -gpu all`` on the devices present (with N > 1 GPUs: one process per GPU,
   NCCL) equals one GPU with iter_size x N.
4. amp: fp16 (GradScaler) and bf16 training of the LeNet recipe reach the fp32 test accuracy within 2%.
5. speed: images/s of CaffeNet and ResNet-50 training (batch 64; fp32 and bf16 AMP; channels-last)
   against a hand-written torch loop in the same run; target >= 0.95x.

``--cpu-dry-run``: the same code paths on the CPU with tiny sizes (CPU stands in for CUDA; the zoo
check then compares the CPU fast paths with the plain-op path), to check the script itself without a
GPU. Prints one line per check ("PASS"/"FAIL"/"INFO") and a summary; exit status 1 if any check
failed. Writes DIR/gpu_check.json with every number when --out is given.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import ddp_helpers  # noqa: E402  (tests/ddp_helpers.py: randomize, shared with the AMP tests)
RESULTS, FAILED = {}, []


def report(name, ok, text, **numbers):
    tag = "INFO" if ok is None else "PASS" if ok else "FAIL"
    print(f"[{tag}] {name}: {text}", flush=True)
    RESULTS[name] = dict(status=tag, text=text, **numbers)
    if ok is False:
        FAILED.append(name)


# -- 1. zoo nets: CUDA equals CPU ------------------------------------------------------------------------
def check_zoo(dev, dry):
    from recaffe.netspec.net.kernels import disabled
    from recaffe.netspec.net.net import Net
    zoo = os.path.join(ROOT, "models", "zoo")
    for name in sorted(os.listdir(zoo)):
        path = os.path.join(zoo, name, "deploy.prototxt")
        if not os.path.exists(path):
            continue
        net = ddp_helpers.randomize(Net(path))
        shape = (2,) + tuple(net.blob_shapes[net.inputs[0]][1:])
        x = torch.randn(shape, generator=torch.Generator().manual_seed(2)) * 50
        with torch.no_grad():
            ref = {k: v.clone() for k, v in net(data=x).items()}
            if dry:
                with disabled():
                    out = net(data=x)
            else:
                net.to(dev)
                out = net(data=x.to(dev))       # (numpy or CPU inputs would be moved as well)
        diff = max(float((out[k].float().cpu() - ref[k]).abs().max()) for k in ref)
        report(f"zoo/{name}", diff <= 1e-4, f"max abs diff {dev.type} vs cpu {diff:.2e} (<= 1e-4)", diff=diff)


# -- LeNet recipe --------------------------------------------------------------------------------------
def lenet_recipe(work, iters, test_iter=4, extra=""):
    from examples.synthetic_data import write_lmdb
    from recaffe.models.lenet import lenet
    for part, n, seed in (("train", 1280, 1), ("test", 400, 2)):
        db = os.path.join(work, f"{part}_lmdb")
        if not os.path.exists(db):
            write_lmdb(db, n, 1, 28, 28, seed=seed)
    lenet(os.path.join(work, "train_lmdb"), 64, os.path.join(work, "train.prototxt"))
    lenet(os.path.join(work, "test_lmdb"), 100, os.path.join(work, "test.prototxt"))
    with open(os.path.join(work, "test.prototxt"), "a") as f:
        f.write('layer { name: "accuracy" type: "Accuracy" bottom: "score" bottom: "label" top: "accuracy" }\n')
    path = os.path.join(work, "solver.prototxt")
    with open(path, "w") as f:
        f.write(f'train_net: "{work}/train.prototxt"\ntest_net: "{work}/test.prototxt"\ntest_iter: {test_iter}\n'
                f'test_interval: {iters}\nbase_lr: 0.01\nmomentum: 0.9\nweight_decay: 0.0005\nlr_policy: "inv"\n'
                f'gamma: 0.0001\npower: 0.75\ndisplay: 10\nmax_iter: {iters}\nsnapshot_prefix: "{work}/lenet"\n'
                f'random_seed: 1\n{extra}\n')
    return path


TRAIN = ("import sys, torch\n"
         "torch.backends.cudnn.deterministic = True\ntorch.backends.cudnn.benchmark = False\n"
         "from recaffe.tools.caffe import main\n"
         "main(sys.argv[1:], verb='train')\n")


def caffe_train(solver, *flags, env_extra=None, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT, CUBLAS_WORKSPACE_CONFIG=":4096:8", **(env_extra or {}))
    p = subprocess.run([sys.executable, "-c", TRAIN, f"-solver={solver}", *flags], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=timeout)
    losses = [float(m) for m in re.findall(r"\] Iteration \d+ \(.*?\), loss = ([-\d.e+]+)", p.stderr)]
    acc = re.findall(r"Test net output #\d+: accuracy = ([-\d.e+]+)", p.stderr)
    return p.returncode, p.stderr, np.array(losses), (float(acc[-1]) if acc else None)


def check_train(work, dry):
    iters = 20 if dry else 300
    solver = lenet_recipe(work, iters)
    rc0, err0, cpu, _ = caffe_train(solver, "-gpu=-1", "-snapshot_format=pth")
    rc1, err1, gpu, _ = caffe_train(solver, "-gpu=0", "-snapshot_format=pth")
    if rc0 or rc1 or not len(cpu) or len(cpu) != len(gpu):
        report("train/-gpu 0 vs cpu", False, f"runs failed (rc {rc0}, {rc1}): {(err0 + err1)[-400:]}")
        return
    rel = np.abs(gpu - cpu) / np.abs(cpu)
    early = rel[: max(1, len(rel) // 3)].max()
    report("train/-gpu 0 vs cpu", early <= 1e-3 and rel.max() <= 2e-2,
           f"LeNet {iters} iterations: loss curve max rel diff {rel.max():.2e} (first third {early:.2e}; "
           f"<= 1e-3 early, <= 2e-2 overall)", max_rel=float(rel.max()), early_rel=float(early))


def check_multi(work, dry):
    n = 1 if dry else max(torch.cuda.device_count(), 1)
    iters = 20 if dry else 100
    solver = lenet_recipe(work, iters)
    rc, err, multi, _ = caffe_train(solver, "-gpu=all" if not dry else "-gpu=-1")
    started = f"{n} processes (backend nccl)" in err if n > 1 else True
    if rc or not len(multi) or not started:
        report("multi/-gpu all", False, f"rc {rc}, start line {'seen' if started else 'missing'}: {err[-400:]}")
        return
    if n == 1:
        report("multi/-gpu all", True, "1 device: trains on GPU 0 (no processes to spawn)")
        return
    os.makedirs(os.path.join(work, "ref"), exist_ok=True)
    ref_solver = lenet_recipe(os.path.join(work, "ref"), iters, extra=f"iter_size: {n}")
    rc2, err2, ref, _ = caffe_train(ref_solver, "-gpu=0")
    rel = float((np.abs(multi - ref) / np.abs(ref)).max()) if len(ref) == len(multi) else float("inf")
    report("multi/-gpu all", rel <= 1e-2, f"{n} GPUs vs 1 GPU with iter_size {n}: loss max rel diff {rel:.2e}",
           max_rel=rel, gpus=n)


def check_amp(work, dry):
    iters = 20 if dry else 500
    solver = lenet_recipe(work, iters, test_iter=4)
    dev = ["-gpu=-1"] if dry else ["-gpu=0"]
    out = {}
    for amp in ("", "bf16", "fp16"):
        rc, err, losses, acc = caffe_train(solver, *dev, *([f"-amp={amp}"] if amp else []))
        skipped = err.count("gradient overflow")
        out[amp or "fp32"] = (rc, acc, skipped, err)
    rc, acc32, _, err = out["fp32"]
    for amp in ("bf16", "fp16"):
        rc, acc, skipped, err = out[amp]
        ok = rc == 0 and acc is not None and acc32 is not None and abs(acc - acc32) <= 0.02
        report(f"amp/{amp}", ok if not dry else (None if rc == 0 else False),
               f"LeNet {iters} iterations: test accuracy {acc} vs fp32 {acc32} (within 0.02); "
               f"{skipped} overflow-skipped iterations" + ("" if rc == 0 else f"; rc {rc}: {err[-300:]}"),
               accuracy=acc, fp32=acc32, skipped=skipped)


# -- 5. training throughput vs a hand-written torch loop --------------------------------------------------
def recaffe_train_net(name, batch):
    from bench_ddp import train_net
    return train_net(os.path.join(ROOT, "models", "zoo", name, "deploy.prototxt"), batch)


def time_recaffe(work, name, batch, iters, dev, amp, channels_last):
    from recaffe.solver.solver import Solver
    path = os.path.join(work, f"{name}_{batch}.prototxt")
    with open(path, "w") as f:
        f.write(recaffe_train_net(name, batch))
    solver = os.path.join(work, f"{name}_solver.prototxt")
    with open(solver, "w") as f:
        f.write(f'net: "{path}"\nbase_lr: 0.001\nmomentum: 0.9\nweight_decay: 0.0005\nlr_policy: "fixed"\n'
                f"max_iter: 100000\ndisplay: 0\nrandom_seed: 1\n")
    s = Solver(solver, device=dev, amp=amp, channels_last=channels_last)
    s.step(2)
    sync(dev)
    t0 = time.perf_counter()
    s.step(iters)
    sync(dev)
    return batch * iters / (time.perf_counter() - t0)


def time_torch(name, batch, iters, dev, amp, channels_last):
    import torch_models
    model = {"bvlc_reference_caffenet": torch_models.caffenet, "resnet50": torch_models.resnet50}[name]()
    layers = list(model.children()) if isinstance(model, torch.nn.Sequential) else None
    if layers is not None and isinstance(layers[-1], torch.nn.Softmax):
        model = torch.nn.Sequential(*layers[:-1])
    model = model.to(dev).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=0.0005)
    size = 227 if "caffenet" in name else 224
    x = torch.full((batch, 3, size, size), 0.5, device=dev)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.zeros(batch, dtype=torch.long, device=dev)
    scaler_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=scaler_dtype, enabled=scaler_dtype is not None):
            out = model(x)
            if out.dim() > 2:
                out = out.flatten(1)
            loss = torch.nn.functional.cross_entropy(out.float(), y)
        loss.backward()
        opt.step()
    for _ in range(2):
        step()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync(dev)
    return batch * iters / (time.perf_counter() - t0)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def check_speed(work, dev, dry):
    batch, iters = (2, 2) if dry else (64, 20)
    for name in ("bvlc_reference_caffenet", "resnet50"):
        for amp in (None, "bf16"):
            ours = time_recaffe(work, name, batch, iters, dev, amp, True)
            theirs = time_torch(name, batch, iters, dev, amp, True)
            ratio = ours / theirs
            label = f"speed/{name} {'fp32' if amp is None else amp} channels_last"
            report(label, None if dry else ratio >= 0.95,
                   f"batch {batch}: recaffe {ours:.1f} images/s, hand-written torch {theirs:.1f} images/s, "
                   f"ratio {ratio:.2f} (target >= 0.95)", ours=ours, torch=theirs, ratio=ratio)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-dry-run", action="store_true")
    ap.add_argument("--only", default="zoo,train,multi,amp,speed")
    ap.add_argument("--out", default=os.environ.get("OUT", ""))
    a = ap.parse_args()
    dry = a.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available; use --cpu-dry-run to check the script on a CPU", file=sys.stderr)
        return 2
    dev = torch.device("cpu" if dry else "cuda:0")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    work = tempfile.mkdtemp(prefix="gpu_check_")
    print(f"gpu_check: {'CPU dry run' if dry else torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
          f"work dir {work}", flush=True)
    only = set(a.only.split(","))
    t0 = time.time()
    for key, fn in (("zoo", lambda: check_zoo(dev, dry)), ("train", lambda: check_train(work, dry)),
                    ("multi", lambda: check_multi(os.path.join(work, "multi"), dry)),
                    ("amp", lambda: check_amp(os.path.join(work, "amp"), dry)),
                    ("speed", lambda: check_speed(work, dev, dry))):
        if key in only:
            os.makedirs(os.path.join(work, key), exist_ok=True)
            t = time.time()
            try:
                fn()
            except (Exception, SystemExit) as e:   # noqa: BLE001 - one failed section must not hide the others
                report(key, False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            print(f"       ({key}: {time.time() - t:.0f} s)", flush=True)
    print(f"gpu_check: {len(RESULTS)} checks, {len(FAILED)} failed ({', '.join(FAILED) or 'none'}), "
          f"{time.time() - t0:.0f} s", flush=True)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "gpu_check.json"), "w") as f:
            json.dump(dict(dry_run=dry, results=RESULTS), f, indent=1)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
