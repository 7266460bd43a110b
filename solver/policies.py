"""Learning-rate policies: the one place that turns (SolverParameter, iteration) into a rate
(src/caffe/solvers/sgd_solver.cpp: SGDSolver::GetLearningRate).

    rate, step = learning_rate(param, it, current_step)

``it`` is the number of completed updates (Caffe's ``iter_``). ``current_step`` is the persistent
counter Caffe keeps for ``multistep`` (advanced by at most one per call) and sets for ``step``; it is
saved in the .solverstate, so it is an argument and a result rather than hidden state. Caffe computes
in float with some ``pow`` calls promoted to double; we compute in double and round the result to
float32, which agrees with Caffe to the last bit or one ulp.
"""
import math

import numpy as np

from recaffe.protos.errors import SolverError

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


def _f32(x):
    with np.errstate(over="ignore"):
        return float(np.float32(x))


def c_pow(a, b):
    """C's pow(): inf or NaN where Python's math.pow raises (extreme solver values train into inf/NaN
    as in Caffe instead of ending in an OverflowError/ValueError)."""
    try:
        return math.pow(a, b)
    except OverflowError:
        return -math.inf if a < 0 and float(b).is_integer() and int(b) % 2 else math.inf
    except ValueError:
        return math.nan


def c_exp(x):
    """C's exp(): inf on overflow."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def check_policy(param, where="solver"):
    """Raise SolverError for an unknown/absent lr_policy or parameters that make it undefined."""
    policy = param.lr_policy
    if policy not in POLICIES:
        shown = f"'{policy}'" if policy else "absent"
        raise SolverError(f"{where}: unknown lr_policy {shown}; valid: {', '.join(POLICIES)}")
    if policy == "step" and param.stepsize <= 0:
        raise SolverError(f"{where}: lr_policy 'step' needs stepsize > 0 (got {param.stepsize})")
    if policy == "poly" and param.max_iter <= 0:
        raise SolverError(f"{where}: lr_policy 'poly' needs max_iter > 0 (got {param.max_iter})")


def learning_rate(param, it, current_step=0):
    """Return (rate, current_step) for iteration ``it`` of a solver with SolverParameter ``param``.

    multistep logs 'MultiStep Status' in Caffe when it advances; callers compare the returned
    current_step with the one they passed to log it."""
    policy = param.lr_policy
    base = param.base_lr
    gamma = param.gamma
    if policy == "fixed":
        rate = base
    elif policy == "step":
        if param.stepsize <= 0:
            raise SolverError(f"lr_policy 'step' needs stepsize > 0 (got {param.stepsize})")
        current_step = it // param.stepsize
        rate = base * c_pow(gamma, current_step)
    elif policy == "exp":
        rate = base * c_pow(gamma, it)
    elif policy == "inv":
        rate = base * c_pow(_f32(1.0 + _f32(gamma * it)), -param.power)
    elif policy == "multistep":
        values = param.stepvalue
        if current_step < len(values) and it >= values[current_step]:
            current_step += 1
        rate = base * c_pow(gamma, current_step)
    elif policy == "poly":
        if param.max_iter <= 0:
            raise SolverError(f"lr_policy 'poly' needs max_iter > 0 (got {param.max_iter})")
        frac = _f32(1.0 - _f32(_f32(it) / _f32(param.max_iter)))
        rate = base * c_pow(frac, param.power)
    elif policy == "sigmoid":
        rate = base * (1.0 / (1.0 + c_exp(-gamma * (it - param.stepsize))))
    else:
        check_policy(param)
    return _f32(rate), current_step
