"""Helpers for the solver tests (no tests here): the tiny net of tests/oracle/make_solver_goldens.py, written to a
temp folder with a given case's solver text and ParamSpecs, read by our Solver."""
import contextlib
import json
import os
import re

import numpy as np
import torch

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "solver")
CASES = json.load(open(os.path.join(GOLDEN, "cases.json")))


def write_case(tmp, name, extra_solver="", solver_text=None, params=None):
    """Write net.prototxt + solver.prototxt for case ``name`` into ``tmp``; returns the solver path."""
    case = CASES[name]
    tmp = str(tmp)
    src = os.path.join(tmp, "source.txt")
    with open(src, "w") as f:
        f.write(os.path.join(GOLDEN, "data.h5") + "\n")
    text = open(os.path.join(GOLDEN, "net.prototxt")).read().replace("@SOURCE@", src)
    for layer in ("conv1", "ip1", "ip2"):
        text = text.replace(f"@P_{layer}@", (params if params is not None else case["params"]).get(layer, ""))
    with open(os.path.join(tmp, "net.prototxt"), "w") as f:
        f.write(text)
    path = os.path.join(tmp, "solver.prototxt")
    base = solver_text or case["solver"]
    for field in set(re.findall(r"(\w+):", extra_solver)):   # extra settings replace the case's
        base = re.sub(rf"\b{field}: \S+", "", base)
    with open(path, "w") as f:
        f.write(f'net: "{tmp}/net.prototxt"\n{base}\n{extra_solver}\n')
    return path


def weights(net):
    return {f"w_{layer}_{i}": b.detach().numpy().copy() for layer, blobs in net.params.items()
            for i, b in enumerate(blobs)}


@contextlib.contextmanager
def one_thread():
    """The tiny nets run fastest (and most repeatably) on one thread; restore the setting after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
