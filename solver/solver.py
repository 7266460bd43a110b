"""The training loop with Caffe's semantics (src/caffe/solver.cpp: Solver::Init, Step, Solve, TestAll,
Test, Snapshot, Restore, UpdateSmoothedLoss; src/caffe/solvers/sgd_solver.cpp: ApplyUpdate).

    s = Solver("lenet_solver.prototxt")
    s.solve()                      # or s.step(100); s.test(); s.snapshot()

Nets come from solver.netsetup (train net + test nets sharing its weights); the update is one of
solver.optim's Caffe optimizers over param groups from the ParamSpecs; the rate comes from
solver.policies. Iteration order, test/display/snapshot cadence and the log lines follow caffe-spec
3.2-3.9 and 7.2. Nets fed by Input layers take their blobs from ``feed(net, phase, iteration)`` (a
callable set by the user returning a dict of arrays), data layers read on their own.

Scale-out hooks (marked ``[scale-out]``): ``self.sync`` (solver.distributed.SolverSync) makes N
processes train as one with iter_size x N; ``self.precision`` (solver.amp.Precision) runs the
forward under autocast (``amp="bf16"|"fp16"``, fp16 with a loss scaler) and/or channels-last. Both
are no-ops by default.
"""
import os
import signal
import time

import torch

from recaffe.protos.errors import SolverError
from . import amp as amp_mod, distributed, groups, netsetup, policies, scoring, state
from .log import log, num, output_lines
from .optim import SOLVERS

ACTIONS = ("stop", "snapshot", "none")


class Solver:
    def __init__(self, source, stages=(), level=None, device=None, feed=None, param=None, amp=None,
                 channels_last=False):
        """source: solver file path, prototxt text or SolverParameter; ``param``: an already read
        (and edited) SolverParameter of the file ``source``. stages/level: added to train_state.
        amp: None, "bf16" or "fp16" (mixed precision); channels_last: NHWC weights (solver.amp)."""
        if param is None:
            self.param, self.path = netsetup.read_solver_param(source)
        else:
            self.param, self.path = param, str(source)
        p = self.param
        if p.type not in SOLVERS:
            raise SolverError(f"{self.path}: unknown solver type '{p.type}'; valid: {', '.join(SOLVERS)}")
        policies.check_policy(p, self.path)
        if p.average_loss < 1:
            raise SolverError(f"{self.path}: average_loss must be >= 1 (got {p.average_loss})")
        if p.iter_size < 1:
            raise SolverError(f"{self.path}: iter_size must be >= 1 (got {p.iter_size})")
        if p.regularization_type not in ("L1", "L2"):
            raise SolverError(f"{self.path}: unknown regularization_type '{p.regularization_type}'; valid: L1, L2")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.sync = distributed.SolverSync()        # [scale-out] data parallel (no-op for one process)
        self.precision = amp_mod.Precision(amp, channels_last, self.device)   # [scale-out] AMP
        seed = p.random_seed if p.random_seed >= 0 else (self.sync.shared_seed() if self.sync.active else -1)
        if seed >= 0:
            netsetup.seed_everything(seed)
        self.net, self.test_nets = netsetup.build_nets(p, self.path, stages, level)
        for net in [self.net] + self.test_nets:
            net.to(self.device)                     # the Net moves its data layers' tops too
            self.precision.prepare(net)
        self.entries = groups.learnable(self.net)
        self.learnable = [e[0] for e in self.entries]
        cls = SOLVERS[p.type]
        kw = dict(lr=p.base_lr, momentum=p.momentum, weight_decay=p.weight_decay,
                  regularization_type=p.regularization_type, clip_gradients=p.clip_gradients,
                  iter_size=p.iter_size, delta=p.delta, rms_decay=p.rms_decay, momentum2=p.momentum2)
        self.optimizer = cls(groups.param_groups(self.entries) or [{"params": []}], **kw)
        self.iter = 0
        self.current_step = 0
        self.feed = feed
        # "binaryproto", "hdf5" (snapshot_format: HDF5) or "pth" (set by the caller / -snapshot_format)
        self.snapshot_format = "hdf5" if p.snapshot_format == p.HDF5 else "binaryproto"
        self.smoothed_loss = 0.0
        self._losses = []
        self._pending = None            # a signal's action, polled after each update / before test batches
        self._actions = {}
        self.requested_early_exit = False
        self.test_scores = []
        self.sync.attach(self, max(seed, 0))        # [scale-out] shard data, broadcast weights

    # -- signals -----------------------------------------------------------------------------------
    def install_signal_handlers(self, sigint_effect="stop", sighup_effect="snapshot"):
        """Caffe's SignalHandler: SIGINT/SIGHUP request stop / snapshot / nothing (tools/caffe.cpp)."""
        for sig, effect in ((signal.SIGINT, sigint_effect), (signal.SIGHUP, sighup_effect)):
            if effect not in ACTIONS:
                raise SolverError(f"invalid signal effect '{effect}'; valid: {', '.join(ACTIONS)}")
            self._actions[sig] = effect
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        action = self._actions.get(signum, "none")
        if action != "none":
            self._pending = action

    def _poll(self):
        action, self._pending = self._pending, None
        return action or "none"

    # -- inputs ------------------------------------------------------------------------------------
    def _inputs(self, net, phase):
        if self.feed is None:
            return {}
        fed = self.feed(net, phase, self.iter) or {}
        return {k: torch.as_tensor(v, dtype=torch.float32).to(self.device) for k, v in fed.items()}

    # -- training ----------------------------------------------------------------------------------
    def step(self, iters):
        """Solver::Step: ``iters`` updates, testing/displaying/snapshotting on Caffe's cadence."""
        p = self.param
        start_iter = self.iter
        stop_iter = self.iter + int(iters)
        self._losses, self.smoothed_loss = [], 0.0
        tick, tick_iter = time.time(), self.iter
        while self.iter < stop_iter:
            for q in self.learnable:
                q.grad = None
            if (p.test_interval > 0 and self.iter % p.test_interval == 0
                    and (self.iter > 0 or p.test_initialization)):
                self.test_all()
                if self.requested_early_exit:
                    break
            display_now = p.display > 0 and self.iter % p.display == 0
            loss = 0.0
            for _ in range(p.iter_size):
                with self.precision.autocast():
                    self.net(**self._inputs(self.net, "TRAIN"))
                if self.net.loss is not None:
                    self.precision.backward(self.net)
                    loss += float(self.net.loss.detach())
            self.sync.reduce_grads(self.learnable)               # [scale-out] SUM over the ranks
            loss = self.sync.reduce_loss(loss) / (p.iter_size * self.sync.world)
            self._update_smoothed_loss(loss, start_iter, p.average_loss)
            if display_now:
                lapse = time.time() - tick
                per_s = (self.iter - tick_iter) / lapse if lapse > 0 and self.iter > tick_iter else 0.0
                log(f"Iteration {self.iter} ({num(per_s)} iter/s, {num(lapse)}s/{p.display} iters), "
                    f"loss = {num(self.smoothed_loss)}", "solver.cpp:239")
                tick, tick_iter = time.time(), self.iter
                outputs = self.sync.last_outputs(self._outputs(self.net))   # [scale-out] last sub-batch's
                for line in output_lines("Train", outputs, self.net.blob_loss_weights):
                    log(line, "solver.cpp:258")
            self.apply_update(display_now)
            self.iter += 1
            action = self.sync.agree(self._poll())              # [scale-out] one decision for all ranks
            if (p.snapshot > 0 and self.iter % p.snapshot == 0) or action == "snapshot":
                self.snapshot()
                self.sync.barrier()
            if action == "stop":
                self.requested_early_exit = True
                break

    def apply_update(self, display_now=False):
        """SGDSolver::ApplyUpdate: rate from the policy, clip, normalise, regularise, update."""
        rate, step = policies.learning_rate(self.param, self.iter, self.current_step)
        if step != self.current_step and self.param.lr_policy == "multistep":
            log(f"MultiStep Status: Iteration {self.iter}, step = {step}", "sgd_solver.cpp:62")
        self.current_step = step
        if display_now:
            log(f"Iteration {self.iter}, lr = {num(rate)}", "sgd_solver.cpp:112")
        for g in self.optimizer.param_groups:
            g["lr"] = rate
        self.optimizer.iteration = self.iter
        if not self.precision.step(self.optimizer, self.iter):   # [scale-out] fp16 overflow: skipped
            return rate
        if self.optimizer.last_clip is not None:
            norm, scale = self.optimizer.last_clip
            log(f"Gradient clipping: scaling down gradients (L2 norm {num(norm)} > "
                f"{num(self.param.clip_gradients)}) by scale factor {num(scale)}", "sgd_solver.cpp:92")
        return rate

    def _update_smoothed_loss(self, loss, start_iter, average_loss):
        if len(self._losses) < average_loss:
            self._losses.append(loss)
            n = len(self._losses)
            self.smoothed_loss = (self.smoothed_loss * (n - 1) + loss) / n
        else:
            idx = (self.iter - start_iter) % average_loss
            self.smoothed_loss += (loss - self._losses[idx]) / average_loss
            self._losses[idx] = loss

    def solve(self, resume_file=None):
        """Solver::Solve: optionally restore, train to max_iter, final snapshot, display, test."""
        p = self.param
        log(f"Solving {self.net.name}", "solver.cpp:289")
        log(f"Learning Rate Policy: {p.lr_policy}", "solver.cpp:290")
        self.requested_early_exit = False
        if resume_file:
            log(f"Restoring previous solver status from {resume_file}", "solver.cpp:296")
            self.restore(resume_file)
        start_iter = self.iter
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
            self.sync.barrier()
        if self.requested_early_exit:
            log("Optimization stopped early.", "solver.cpp:318")
            return
        if p.display and self.iter % p.display == 0 and self.sync.root:   # rank 0's batch is the next one
            with torch.no_grad(), self.precision.autocast():
                self.net(**self._inputs(self.net, "TRAIN"))
            loss = float(self.net.loss) if self.net.loss is not None else 0.0
            self._update_smoothed_loss(loss, start_iter, p.average_loss)
            log(f"Iteration {self.iter}, loss = {num(self.smoothed_loss)}", "solver.cpp:327")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        log("Optimization Done.", "solver.cpp:332")

    # -- testing -----------------------------------------------------------------------------------
    _outputs = staticmethod(scoring.outputs)

    def test_all(self):
        self.test_scores = []
        for k in range(len(self.test_nets) if self.sync.root else 0):   # [scale-out] rank 0 tests
            if self.requested_early_exit:
                break
            self.test_scores.append(self.test(k))
        self.requested_early_exit = self.sync.any(self.requested_early_exit)

    def test(self, k=0):
        """Solver::Test: test_iter[k] forward passes of test net k (solver.scoring, the loop ``caffe
        test`` shares); returns {output name: [means]}, or None when a stop request interrupted it."""
        p, net = self.param, self.test_nets[k]
        log(f"Iteration {self.iter}, Testing net (#{k})", "solver.cpp:347")

        def before_batch(_):
            action = self._poll()
            if action == "snapshot":      # Solver::Test handles a snapshot request at once
                self.snapshot()
            elif action == "stop":
                self.requested_early_exit = True
                log("Test interrupted.", "solver.cpp:381")
                return False
            return True

        scores = scoring.score(net, p.test_iter[k], lambda: net(**self._inputs(net, "TEST")), before_batch)
        if scores is None:
            return None
        if p.test_compute_loss:
            log(f"Test loss: {num(scores.loss)}", "solver.cpp:401")
        for line in output_lines("Test", scores.means, net.blob_loss_weights):
            log(line, "solver.cpp:414")
        return dict(scores.means)

    # -- snapshots ---------------------------------------------------------------------------------
    def _prefix(self):
        prefix = self.param.snapshot_prefix
        if not prefix:   # [master]: the solver file's path without extension
            prefix = os.path.splitext(self.path)[0] if self.path and not self.path.startswith("<") else "snapshot"
        elif prefix.endswith("/") or os.path.isdir(prefix):
            prefix = os.path.join(prefix, os.path.splitext(os.path.basename(self.path or "snapshot"))[0])
        return prefix

    def snapshot(self, fmt=None):
        """Write <prefix>_iter_<iter>.caffemodel + .solverstate (fmt "hdf5": .caffemodel.h5 +
        .solverstate.h5; fmt "pth": .pth + .solverstate.pth); both written atomically. Returns (model
        path, state path)."""
        fmt = fmt or self.snapshot_format
        base = f"{self._prefix()}_iter_{self.iter}"
        if not self.sync.root:                      # [scale-out] rank 0 writes (the caller then barriers)
            ext = {"pth": (".pth", ".solverstate.pth"), "hdf5": (".caffemodel.h5", ".solverstate.h5")}
            model, st = ext.get(fmt, (".caffemodel", ".solverstate"))
            return base + model, base + st
        history = state.history_list(self.optimizer, self.learnable)
        if fmt == "pth":
            model, solverstate = base + ".pth", base + ".solverstate.pth"
            log(f"Snapshotting to torch file {model}", "solver.cpp:464")
            self.net.save_weights(model)
            log(f"Snapshotting solver state to torch file {solverstate}", "sgd_solver.cpp:284")
            payload = {"iter": self.iter, "learned_net": model, "current_step": self.current_step,
                       "history": [h.detach().cpu() for h in history]}
            netsetup.atomic_torch_save(payload, solverstate)
        elif fmt == "hdf5":   # Solver::SnapshotToHDF5, SGDSolver::SnapshotSolverStateToHDF5
            model, solverstate = base + ".caffemodel.h5", base + ".solverstate.h5"
            log(f"Snapshotting to HDF5 file {model}", "solver.cpp:474")
            self.net.save_weights(model)
            log(f"Snapshotting solver state to HDF5 file {solverstate}", "sgd_solver.cpp:296")
            state.write_solverstate_h5(solverstate, self.iter, model, history, self.current_step)
        else:
            model, solverstate = base + ".caffemodel", base + ".solverstate"
            log(f"Snapshotting to binary proto file {model}", "solver.cpp:464")
            self.net.save_weights(model)
            log(f"Snapshotting solver state to binary proto file {solverstate}", "sgd_solver.cpp:284")
            state.write_solverstate(solverstate, self.iter, model, history, self.current_step)
        return model, solverstate

    def restore(self, path):
        """Solver::Restore: iter, current_step, learned_net weights and the history blobs."""
        path = str(path)
        st = state.read_solverstate(path)
        if st.learned_net:
            model = st.learned_net
            if not os.path.exists(model):   # moved snapshots: look beside the state file
                alt = os.path.join(os.path.dirname(path), os.path.basename(model))
                model = alt if os.path.exists(alt) else model
            self.net.load_weights(model)
        state.load_histories(path, st, self.optimizer, self.learnable, exact_shapes=path.endswith(".h5"))
        self.iter = st.iter
        self.current_step = st.current_step
        self.optimizer.iteration = st.iter

    def load_weights(self, paths):
        """-weights: each file (comma-separated) into the train net and every test net, in order. A file
        that fills nothing of the train net is refused (another net's weights)."""
        for w in [w for w in str(paths).split(",") if w]:
            netsetup.load_checked(self.net, w)
            for net in self.test_nets:
                net.load_weights(w)
        self.sync.broadcast_params(self.net)        # [scale-out] rank 0's weights everywhere

