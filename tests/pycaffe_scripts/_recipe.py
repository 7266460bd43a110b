"""Deterministic weights and inputs shared by real pycaffe and recaffe (pure numpy)."""
import numpy as np


def fill_params(net, seed, scale=0.5):
    """Every parameter blob, in net order, from one RandomState(seed): uniform(-scale, scale)."""
    rng = np.random.RandomState(seed)
    for name in net.params:
        for blob in net.params[name]:
            blob.data[...] = rng.uniform(-scale, scale, blob.data.shape)


def array(seed, shape, lo=-1.0, hi=1.0):
    return np.random.RandomState(seed).uniform(lo, hi, shape).astype(np.float32)


def write(work, name, text):
    import os
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(text)
    return path
