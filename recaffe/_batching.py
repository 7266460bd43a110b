"""Batched forward/backward over arrays longer than the net's batch (pycaffe.py: Net.forward_all,
Net.forward_backward_all, Net._batch).

The arrays are cut into batches of the net's batch size (the first axis of the first blob); a last,
short batch is padded with zeros and the padded rows are dropped from the results.
"""
import itertools

import numpy as np


def batches(net, arrays):
    """Yield {name: array of batch_size rows} for the given equally long arrays."""
    if not arrays:
        return
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    num = len(next(iter(arrays.values())))
    batch_size = next(iter(net.blobs.values())).shape[0]
    full, rest = divmod(num, batch_size)
    for b in range(full):
        yield {k: v[b * batch_size:(b + 1) * batch_size] for k, v in arrays.items()}
    if rest:
        yield {k: np.concatenate([v[num - rest:], np.zeros((batch_size - rest,) + v.shape[1:], v.dtype)])
               for k, v in arrays.items()}


def _pack(collected, n_given):
    out = {k: np.asarray(v) for k, v in collected.items()}
    if n_given is not None:
        out = {k: v[:n_given] for k, v in out.items()}
    return out


def _length(kwargs):
    return len(next(iter(kwargs.values()))) if kwargs else None


def forward_all(net, blobs=None, **kwargs):
    """Forward every batch of the inputs; {blob: array over all rows} for the outputs and ``blobs``."""
    names = list(dict.fromkeys(list(net.outputs) + list(blobs or [])))
    collected = {n: [] for n in names}
    for batch in batches(net, kwargs):
        outs = net.forward(blobs=blobs, **batch)
        for n in names:
            collected[n].extend(np.array(outs[n], copy=True))
    return _pack(collected, _length(kwargs))


def forward_backward_all(net, blobs=None, diffs=None, **kwargs):
    """Forward and backward every batch; returns ({blob: data}, {blob: diff}) over all rows. Input
    arrays feed the forward passes, output arrays (top diffs) the backward passes."""
    out_names = list(dict.fromkeys(list(net.outputs) + list(blobs or [])))
    diff_names = list(dict.fromkeys(list(net.inputs) + list(diffs or [])))
    all_outs = {n: [] for n in out_names}
    all_diffs = {n: [] for n in diff_names}
    fwd = batches(net, {k: kwargs[k] for k in net.inputs if k in kwargs})
    bwd = batches(net, {k: kwargs[k] for k in net.outputs if k in kwargs})
    for fb, bb in itertools.zip_longest(fwd, bwd, fillvalue={}):
        outs = net.forward(blobs=blobs, **fb)
        grads = net.backward(diffs=diffs, **bb)
        for n in out_names:
            all_outs[n].extend(np.array(outs[n], copy=True))
        for n in diff_names:
            all_diffs[n].extend(np.array(grads[n], copy=True))
    n = _length(kwargs)
    return _pack(all_outs, n), _pack(all_diffs, n)
