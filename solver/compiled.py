"""torch.compile as an opt-in (``caffe time -compile``, ``caffe train -compile``, ``net.compile()``).

``net.compile()`` is torch's own ``nn.Module.compile``: while Dynamo traces, the CPU fast paths step
aside (netspec.net.kernels: Inductor cannot lower oneDNN's custom ops and the data_ptr-keyed caches
break the trace), so the compiled net is plain torch ops fused by Inductor. Whether that is faster
than recaffe's hand-written CPU paths depends on the net and the machine (bench/README.md), so
nothing is compiled unless asked; ``caffe time -compile`` measures both on the spot.
"""
import time

import torch

from .log import log, num


def compile_net(net, **kw):
    """``net.compile(**kw)`` with the data layers (file readers, numpy: nothing for Inductor) left eager."""
    for layer in net.layers:
        if getattr(layer, "is_data", False) and not getattr(layer, "feeds_inputs", False):
            layer.forward = torch.compiler.disable(layer.forward)
    net.compile(**kw)
    return net


def _inputs(net, device):
    return {n: torch.zeros(net.blob_shapes[n], device=device) for n in net.inputs}


def _run(call, net, inputs, train):
    if train:
        call(**inputs)
        if net.loss is not None and net.loss.requires_grad:
            net.loss.backward()
        for p in net.parameters():
            p.grad = None
    else:
        with torch.no_grad():
            call(**inputs)


def whole_net_ms(call, net, iterations, device, train):
    """Average ms of ``iterations`` whole-net passes (forward, + backward when ``train``) after one
    warm-up pass."""
    inputs = _inputs(net, device)
    _run(call, net, inputs, train)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(max(iterations, 1)):
        _run(call, net, inputs, train)
    sync()
    return (time.perf_counter() - t0) * 1e3 / max(iterations, 1)


def compare(net, iterations, device, train):
    """Log and return (eager ms, compiled ms, compile seconds) for whole-net passes of ``net``."""
    what = "forward-backward" if train else "forward"
    eager = whole_net_ms(net, net, iterations, device, train)
    for layer in net.layers:
        if getattr(layer, "is_data", False) and not getattr(layer, "feeds_inputs", False):
            layer.forward = torch.compiler.disable(layer.forward)
    compiled = torch.compile(net)
    t0 = time.perf_counter()
    _run(compiled, net, _inputs(net, device), train)     # compiles
    compile_s = time.perf_counter() - t0
    comp = whole_net_ms(compiled, net, iterations, device, train)
    log(f"Whole net {what}: eager {num(eager)} ms, torch.compile {num(comp)} ms "
        f"(x{num(eager / comp)} speed-up; compiling took {num(compile_s)} s)", "caffe.cpp:432")
    verdict = "faster: use -compile" if comp < eager else "not faster here: keep the eager default"
    log(f"torch.compile is {verdict}", "caffe.cpp:433")
    return eager, comp, compile_s
