"""lr policies (solver/policies.py) against their closed forms (caffe-spec 3.4, sgd_solver.cpp)."""
import math

import numpy as np
import pytest

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import SolverError
from recaffe.solver.policies import learning_rate


def param(**kw):
    p = caffe_pb2.SolverParameter(base_lr=0.01, max_iter=1000)
    for k, v in kw.items():
        if k == "stepvalue":
            p.stepvalue.extend(v)
        else:
            setattr(p, k, v)
    return p


def f32(x):
    return float(np.float32(x))


CLOSED = {
    "fixed": (dict(), lambda it, b: b),
    "step": (dict(gamma=0.1, stepsize=300), lambda it, b: b * f32(0.1) ** (it // 300)),
    "exp": (dict(gamma=0.999), lambda it, b: b * f32(0.999) ** it),
    "inv": (dict(gamma=1e-4, power=0.75), lambda it, b: b * (1 + f32(1e-4) * it) ** -0.75),
    # Caffe evaluates 1 - it/max_iter in float (visible near the end: 1 - 0.999f)
    "poly": (dict(power=0.9), lambda it, b: b * f32(1 - f32(it / 1000)) ** f32(0.9)),
    "sigmoid": (dict(gamma=0.05, stepsize=500), lambda it, b: b / (1 + math.exp(-f32(0.05) * (it - 500)))),
}


@pytest.mark.parametrize("policy", sorted(CLOSED))
def test_closed_forms(policy):
    kw, fn = CLOSED[policy]
    p = param(lr_policy=policy, **kw)
    base = p.base_lr
    for it in (0, 1, 299, 300, 301, 650, 999):
        rate, _ = learning_rate(p, it)
        assert rate == pytest.approx(fn(it, base), rel=2e-7), (policy, it)


def test_step_sets_current_step():
    p = param(lr_policy="step", gamma=0.5, stepsize=10)
    assert learning_rate(p, 35, 0) == (f32(p.base_lr * 0.125), 3)


def test_multistep_advances_one_step_per_call():
    p = param(lr_policy="multistep", gamma=0.1, stepvalue=[5, 6, 100])
    step, rates = 0, []
    for it in range(10):
        rate, step = learning_rate(p, it, step)
        rates.append((rate, step))
    assert [s for _, s in rates] == [0, 0, 0, 0, 0, 1, 2, 2, 2, 2]
    assert rates[9][0] == f32(p.base_lr * f32(0.1) ** 2)
    # resumed at iteration 50 from current_step 0: one step per call, as Caffe (counter is not recomputed)
    assert learning_rate(p, 50, 0)[1] == 1 and learning_rate(p, 51, 1)[1] == 2


@pytest.mark.parametrize("kw,needle", [(dict(lr_policy="cosine"), "cosine"), (dict(), "absent"),
                                       (dict(lr_policy="step", stepsize=0), "stepsize")])
def test_bad_policy(kw, needle):
    with pytest.raises(SolverError, match=needle):
        learning_rate(param(**kw), 3)
