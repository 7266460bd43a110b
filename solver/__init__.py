"""Caffe's solvers on PyTorch: optimizers (solver.optim), lr policies (solver.policies), param groups
from ParamSpecs (solver.groups), the training loop (solver.solver.Solver), .solverstate I/O
(solver.state), Caffe-format logs (solver.log, solver.logparse) and the caffe verbs (solver.cli)."""
from .optim import SOLVERS, AdaDelta, AdaGrad, Adam, Nesterov, RMSProp, SGD
from .policies import learning_rate

__all__ = ["SOLVERS", "SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam", "learning_rate", "Solver"]


def __getattr__(name):   # the loop pulls in the Net runtime: import it on first use
    if name == "Solver":
        from .solver import Solver
        return Solver
    raise AttributeError(name)
