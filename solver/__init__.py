"""Caffe's solvers on PyTorch: optimizers (solver.optim), lr policies (solver.policies), param groups
from ParamSpecs (solver.groups), the training loop (solver.solver.Solver), .solverstate I/O
(solver.state), Caffe-format logs (solver.log, solver.logparse) and the scoring loop shared by the test
phase and `caffe test` (solver.scoring). The caffe verbs live above this package, in tools/ (caffe.py,
verbs.py)."""
from .optim import SOLVERS, AdaDelta, AdaGrad, Adam, Nesterov, RMSProp, SGD
from .policies import learning_rate

__all__ = ["SOLVERS", "SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam", "learning_rate", "Solver"]


def __getattr__(name):   # the loop pulls in the Net runtime: import it on first use
    if name == "Solver":
        from .solver import Solver
        return Solver
    raise AttributeError(name)
