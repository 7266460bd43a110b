"""Scoring a net over a number of batches: the one loop behind the solver's test phase (Solver::Test,
src/caffe/solver.cpp) and the ``caffe test`` verb (test() in tools/caffe.cpp).

Both run ``iters`` forward passes, add up the net's loss and every element of every output blob, and
report the means. Caffe keeps these sums in ``float`` (``Dtype loss``, ``vector<Dtype> test_score``;
``float loss``, ``vector<float> test_score`` in caffe.cpp) and divides by the iteration count in float, so
the sums here are float32 too: the printed means are the numbers Caffe prints for the same outputs.

    scores = score(net, 50, before_batch=..., on_batch=...)
    scores.loss                  # mean loss
    scores.means                 # [(output blob name, [mean of each element])], in net.outputs order
    mean_lines(scores.means, net.blob_loss_weights)   # ['accuracy = 0.5', 'loss = 2.3 (* 1 = 2.3 loss)']
"""
from typing import List, NamedTuple, Tuple

import numpy as np
import torch

from .log import output_lines

F32 = np.float32


class Scores(NamedTuple):
    loss: float
    means: List[Tuple[str, List[float]]]


def outputs(net):
    """[(output blob name, its values flattened)] after a forward pass, in ``net.outputs`` order."""
    return [(n, net.blobs[n].detach().reshape(-1).tolist()) for n in net.outputs if n in net.blobs]


def score(net, iters, forward=None, before_batch=None, on_batch=None):
    """Forward ``iters`` batches without gradients. ``forward()`` runs one batch (default ``net()``);
    ``before_batch(i)`` returning False stops early (-> None: Solver::Test's "Test interrupted.");
    ``on_batch(i, outputs)`` sees each batch's outputs (``caffe test`` logs them)."""
    run = forward or net
    sums, loss = None, F32(0)
    with torch.no_grad():
        for i in range(iters):
            if before_batch is not None and before_batch(i) is False:
                return None
            run()
            if net.loss is not None:
                loss = F32(loss + F32(float(net.loss)))
            outs = outputs(net)
            if on_batch is not None:
                on_batch(i, outs)
            if sums is None:
                sums = [(name, [F32(0)] * len(vals)) for name, vals in outs]
            for (_, acc), (_, vals) in zip(sums, outs):
                for j, v in enumerate(vals):
                    acc[j] = F32(acc[j] + F32(v))
    n = F32(max(iters, 1))
    return Scores(float(F32(loss / n)), [(name, [float(F32(v / n)) for v in acc]) for name, acc in sums or []])


def mean_lines(means, weights):
    """``caffe test``'s last lines: '<name> = <mean>[ (* <w> = <w * mean> loss)]' per output element."""
    return output_lines(None, means, weights)
