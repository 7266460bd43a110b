"""pycaffe's solvers (python/caffe/_caffe.cpp: get_solver, SGDSolver ... AdamSolver) over solver.Solver.

``get_solver(path)`` builds the solver the file's ``type`` names; ``SGDSolver(path)`` and its siblings
build that update rule whatever the file says (as constructing caffe::SGDSolver directly does). The
solver's nets are handed out as facade Nets (``solver.net``, ``solver.test_nets``), so
``solver.net.blobs['loss'].data`` and ``solver.net.copy_from(...)`` work as in pycaffe.
"""
from recaffe.protos.errors import SolverError
from .net import Net


class _Solver:
    """A pycaffe solver: ``net``, ``test_nets``, ``iter``, ``step(n)``, ``solve()``, ``snapshot()``,
    ``restore(path)``; ``torch_solver`` is the underlying solver.Solver."""

    solver_type = None   # None: the file's type (get_solver)

    def __init__(self, solver_file):
        from recaffe.solver.netsetup import read_solver_param
        from recaffe.solver.solver import Solver
        source = solver_file
        if self.solver_type is not None:
            param, _ = read_solver_param(solver_file)
            if param.type != self.solver_type:    # the class decides the update rule, not the file
                param.type = self.solver_type
                source = param
        self._file = solver_file
        self.torch_solver = Solver(source, feed=self._feed)

    @staticmethod
    def _feed(net, phase, iteration):
        """Input blobs of the solver's nets come from their facade blobs (``net.blobs['data'].data[...]
        = x`` before ``step``), as pycaffe users feed Input layers."""
        if not net.inputs:
            return {}
        return dict(Net._wrap(net)._inputs)

    @property
    def net(self):
        return Net._wrap(self.torch_solver.net)

    @property
    def test_nets(self):
        return [Net._wrap(n) for n in self.torch_solver.test_nets]

    @property
    def iter(self):
        return int(self.torch_solver.iter)

    @property
    def param(self):
        return self.torch_solver.param

    @property
    def type(self):
        return self.torch_solver.param.type or "SGD"

    def step(self, iters):
        """Run ``iters`` training iterations (forward, backward, update; testing/snapshots on schedule)."""
        self.torch_solver.step(int(iters))

    def solve(self, resume_file=None):
        """Train to max_iter (optionally restoring a .solverstate first)."""
        if resume_file:
            self.restore(resume_file)
        self.torch_solver.solve()

    def snapshot(self):
        self.torch_solver.snapshot()

    def restore(self, path):
        self.torch_solver.restore(path)

    def __repr__(self):
        return f"<recaffe.{type(self).__name__} {self.type} iter={self.iter}>"


def _make(name, type_name):
    cls = type(name, (_Solver,), {"solver_type": type_name,
                                  "__doc__": f"pycaffe's caffe.{name}: a solver with Caffe's {type_name} update."})
    return cls


SGDSolver = _make("SGDSolver", "SGD")
NesterovSolver = _make("NesterovSolver", "Nesterov")
AdaGradSolver = _make("AdaGradSolver", "AdaGrad")
RMSPropSolver = _make("RMSPropSolver", "RMSProp")
AdaDeltaSolver = _make("AdaDeltaSolver", "AdaDelta")
AdamSolver = _make("AdamSolver", "Adam")


def get_solver(solver_file):
    """The solver the file's ``type`` (or legacy ``solver_type``) names."""
    s = _Solver(solver_file)
    known = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
    if s.type not in known:
        raise SolverError(f"{solver_file}: unknown solver type '{s.type}'; valid: {', '.join(known)}")
    return s
