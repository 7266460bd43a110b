"""``caffe time``: per-layer forward and backward times (tools/caffe.cpp: time()).

Each layer is run on its own: its bottoms are detached leaves, so one ``torch.autograd.backward`` per
layer (in reverse order) measures that layer's backward alone, as Caffe's ``Layer::Backward`` loop
does. Gradients between layers are passed by hand (a blob's grad is the sum over its consumers;
in-place layers replace it). Lines follow Caffe's wording: ``Iteration: j forward-backward time``, the
per-layer table (name right-aligned in 10 columns) and the averages.
"""
import time

import torch

from recaffe.netspec.net.net import Net
from .log import log, num


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward(net, device, fwd_times):
    record = []
    blobs = {}
    for k, s in enumerate(net.steps):
        _sync(device)
        t0 = time.perf_counter()
        if getattr(s.layer, "feeds_inputs", False):    # Input: zero blobs of the declared shapes
            tops = s.layer(*[torch.zeros(net.blob_shapes[t], device=device) for t in s.tops])
            leaves = []
        elif not s.bottoms:
            tops = s.layer()
            leaves = []
        else:
            leaves = [blobs[b].detach().requires_grad_(blobs[b].requires_grad) for b in s.bottoms]
            for i in s.detach:
                leaves[i] = leaves[i].detach()
            with torch.no_grad() if s.grad_free else torch.enable_grad():
                tops = s.layer(*leaves)
        tops = [t.to(device) for t in tops]
        _sync(device)
        fwd_times[k] += time.perf_counter() - t0
        for name, t in zip(s.tops, tops):
            blobs[name] = t
        record.append((leaves, tops))
    return record


def _backward(net, device, record, bwd_times):
    grads = {}
    for k in reversed(range(len(net.steps))):
        s = net.steps[k]
        leaves, tops = record[k]
        outs, gouts = [], []
        for j, (name, t) in enumerate(zip(s.tops, tops)):
            g = grads.pop(name, None)
            w = dict(s.loss).get(j)
            if w is not None:
                g = torch.full_like(t, w) if g is None else g + w
            if g is not None and t.requires_grad:
                outs.append(t)
                gouts.append(g)
        if not outs:
            continue
        _sync(device)
        t0 = time.perf_counter()
        wanted = [x for x in leaves if x.requires_grad] + [p for p in s.layer.blobs if p.requires_grad]
        torch.autograd.backward(outs, gouts, inputs=wanted or None)
        _sync(device)
        bwd_times[k] += time.perf_counter() - t0
        for name, x in zip(s.bottoms, leaves):
            if x.grad is not None:
                grads[name] = grads[name] + x.grad if name in grads else x.grad


def time_net(model, phase, iterations, stages=(), level=0, device=torch.device("cpu"), compile=False):
    net = Net(model, phase=phase, stages=stages, level=level).to(device)
    n = len(net.steps)
    fwd, bwd = [0.0] * n, [0.0] * n
    log("Performing Forward", "caffe.cpp:352")
    rec = _forward(net, device, [0.0] * n)
    log("Performing Backward", "caffe.cpp:357")
    _backward(net, device, rec, [0.0] * n)
    log("*** Benchmark begins ***", "caffe.cpp:381")
    log(f"Testing for {iterations} iterations.", "caffe.cpp:382")
    total0 = time.perf_counter()
    for j in range(iterations):
        t0 = time.perf_counter()
        rec = _forward(net, device, fwd)
        _backward(net, device, rec, bwd)
        log(f"Iteration: {j + 1} forward-backward time: {num((time.perf_counter() - t0) * 1e3)} ms.",
            "caffe.cpp:411")
    total = time.perf_counter() - total0
    it = max(iterations, 1)
    log("Average time per layer: ", "caffe.cpp:414")
    for k, name in enumerate(net.layer_names):
        log(f"{name:>10}\tforward: {num(fwd[k] * 1e3 / it)} ms.", "caffe.cpp:417")
        log(f"{name:>10}\tbackward: {num(bwd[k] * 1e3 / it)} ms.", "caffe.cpp:420")
    log(f"Average Forward pass: {num(sum(fwd) * 1e3 / it)} ms.", "caffe.cpp:425")
    log(f"Average Backward pass: {num(sum(bwd) * 1e3 / it)} ms.", "caffe.cpp:427")
    log(f"Average Forward-Backward: {num(total * 1e3 / it)} ms.", "caffe.cpp:429")
    log(f"Total Time: {num(total * 1e3)} ms.", "caffe.cpp:430")
    log("*** Benchmark ends ***", "caffe.cpp:431")
    if compile:      # [scale-out] -compile: whole-net eager vs torch.compile (solver.compiled)
        from .compiled import compare
        compare(net, iterations, device, phase == "TRAIN")
    return {"forward_ms": [f * 1e3 / it for f in fwd], "backward_ms": [b * 1e3 / it for b in bwd],
            "layers": list(net.layer_names), "average_ms": total * 1e3 / it}
