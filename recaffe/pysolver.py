"""pycaffe's solvers (python/caffe/_caffe.cpp: get_solver, SGDSolver ... AdamSolver) over solver.Solver.

``get_solver(path)`` builds the solver the file's ``type`` names and hands it out as that type's class
(``SGDSolver``, ``AdamSolver``...), as pycaffe's solver registry does; ``SGDSolver(path)`` and its
siblings build that update rule whatever the file says (as constructing caffe::SGDSolver directly does).
The solver's nets are handed out as facade Nets (``solver.net``, ``solver.test_nets``), so
``solver.net.blobs['loss'].data`` and ``solver.net.copy_from(...)`` work as in pycaffe.

``apply_update()`` is Caffe 1.0's SGDSolver::ApplyUpdate: one update from the current parameter diffs
(rate from the policy, clipping, normalisation, regularisation, the type's rule) and ``++iter_``;
``lr`` is GetLearningRate() at the current iteration; ``add_callback(on_start, on_gradients_ready)``
calls ``on_start()`` before each training iteration's forward passes (after its testing) and
``on_gradients_ready()`` between its backward passes and its update, as Solver::Step does.
"""
import numpy as np

from recaffe.protos.errors import SolverError
from recaffe.solver import policies
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
        self._callbacks, self._started_iter = [], None

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

    @property
    def lr(self):
        """The learning rate of the current iteration (SGDSolver::GetLearningRate), a float32 value."""
        rate, _ = policies.learning_rate(self.torch_solver.param, self.torch_solver.iter,
                                         self.torch_solver.current_step)
        return float(np.float32(rate))

    def step(self, iters):
        """Run ``iters`` training iterations (forward, backward, update; testing/snapshots on schedule)."""
        self.torch_solver.step(int(iters))

    def apply_update(self):
        """One update from the current diffs, then ``iter += 1`` (Caffe 1.0's ApplyUpdate); the diffs are
        not cleared (Step clears them before each iteration; Net.clear_param_diffs does it by hand)."""
        ts, p = self.torch_solver, self.torch_solver.param
        update = getattr(self, "_raw_apply_update", ts.apply_update)   # not Step's callback wrapper
        update(display_now=bool(p.display and ts.iter % p.display == 0))
        ts.iter += 1

    def add_callback(self, on_start, on_gradients_ready):
        """Call ``on_start()`` at the start of each training iteration and ``on_gradients_ready()`` once
        its gradients are computed, before the update (pycaffe's Solver.add_callback)."""
        if not self._callbacks:
            ts = self.torch_solver
            ts.net.register_forward_pre_hook(self._on_forward)
            update = ts.apply_update

            def apply_update(*args, **kwargs):      # Step's update: the gradients are ready
                for _, ready in self._callbacks:
                    ready()
                return update(*args, **kwargs)
            ts.apply_update = apply_update
            self._raw_apply_update = update
        self._callbacks.append((on_start, on_gradients_ready))

    def _on_forward(self, module, args):
        """The train net's first forward of an iteration (Step's forwards go through the module call)."""
        if self._started_iter != self.torch_solver.iter:
            self._started_iter = self.torch_solver.iter
            for start, _ in self._callbacks:
                start()

    def share_weights(self, net):
        """Make ``net`` use this solver's train net weights for the layers they share by name
        (pycaffe's share_weights: net.ShareTrainedLayersWith(solver.net))."""
        (net.torch_net if isinstance(net, Net) else net).share_with(self.torch_solver.net)

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


_BY_TYPE = {c.solver_type: c for c in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver,
                                        AdamSolver)}


def get_solver(solver_file):
    """The solver the file's ``type`` (or legacy ``solver_type``) names, as an instance of that type's
    class (``type(get_solver(f)) is AdamSolver`` for ``type: "Adam"``)."""
    s = _Solver(solver_file)
    cls = _BY_TYPE.get(s.type)
    if cls is None:
        raise SolverError(f"{solver_file}: unknown solver type '{s.type}'; valid: {', '.join(_BY_TYPE)}")
    s.__class__ = cls
    return s
