"""Reading a solver definition and building its nets (src/caffe/solver.cpp: Solver::Init, InitTrainNet,
InitTestNets). Legacy solver fields are upgraded by protos.io.read_solver (protos/upgrade.py).

* Train net: exactly one of train_net_param, train_net, net_param, net. Its state is {phase: TRAIN},
  merged with the net's own ``state``, merged with ``train_state`` (plus -stage/-level from the CLI).
* Test nets: every test_net_param, then every test_net file, then (with net/net_param) one copy of the
  generic net per remaining test_iter entry; state {phase: TEST} <- the net's state <- test_state[i].
  Each test net shares the train net's weights (Net::ShareTrainedLayersWith).
* Net file names are read relative to the working directory, as Caffe does; when not found there, a
  path relative to the solver file's folder is tried too (recipes are often run from elsewhere).
"""
import os
import random

import numpy as np
import torch

from recaffe.netspec.weights import wire
from recaffe.netspec.net.net import Net
from recaffe.protos.files import atomic_write
from recaffe.protos import caffe_pb2
from recaffe.protos.errors import SolverError, WeightsError
from recaffe.protos.io import read_net, read_solver


def read_solver_param(source):
    """(SolverParameter, path or '<solver>'), through protos.io.read_solver: the one upgrade path
    (protos/upgrade.py: solver_type -> type, inline legacy nets) for files, texts and messages alike."""
    if isinstance(source, caffe_pb2.SolverParameter):
        return read_solver(source), "<solver>"
    path = str(source)
    if "\n" not in path and "{" not in path and ":" not in os.path.basename(path) and not os.path.exists(path):
        raise SolverError(f"{path}: solver file not found")
    param = caffe_pb2.SolverParameter()
    param.CopyFrom(read_solver(source))
    if "\n" in path or ":" in os.path.basename(path):
        path = "<solver>"
    return param, path


def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def _net_file(name, solver_path, field):
    if os.path.exists(name):
        return name
    if solver_path and not solver_path.startswith("<"):
        alt = os.path.join(os.path.dirname(os.path.abspath(solver_path)), name)
        if os.path.exists(alt):
            return alt
    raise SolverError(f"{solver_path}: {field} file '{name}' not found (relative to {os.getcwd()})")


def _with_state(net_param, phase, extra_states, stages=(), level=None):
    param = caffe_pb2.NetParameter()
    param.CopyFrom(net_param)
    st = caffe_pb2.NetState(phase=phase)
    st.MergeFrom(param.state)
    for extra in extra_states:
        st.MergeFrom(extra)
    st.stage.extend(stages)
    if level is not None:
        st.level = int(level)
    param.state.CopyFrom(st)
    return param


def _make(net_param, phase, extras, stages=(), level=None):
    param = _with_state(net_param, phase, extras, stages, level)
    return Net(param, phase=caffe_pb2.Phase.Name(param.state.phase), level=param.state.level, stages=())


def build_nets(p, path, stages=(), level=None):
    """(train Net, [test Nets]) for SolverParameter ``p`` (read from ``path``)."""
    sources = [f for f in ("train_net_param", "train_net", "net_param", "net") if p.HasField(f)]
    if len(sources) != 1:
        raise SolverError(f"{path}: exactly one of train_net_param, train_net, net_param, net must be set "
                          f"(found {', '.join(sources) or 'none'})")
    src = sources[0]
    if src.endswith("_param"):
        train_param = getattr(p, src)
    else:
        train_param = read_net(_net_file(getattr(p, src), path, src))
    generic = None
    if p.HasField("net") or p.HasField("net_param"):
        if p.HasField("net") and p.HasField("net_param"):
            raise SolverError(f"{path}: net and net_param may not both be set")
        generic = train_param if src in ("net", "net_param") else (
            p.net_param if p.HasField("net_param") else read_net(_net_file(p.net, path, "net")))
    test_params = list(p.test_net_param) + [read_net(_net_file(f, path, "test_net")) for f in p.test_net]
    n_explicit = len(test_params)
    if generic is not None:
        if len(p.test_iter) < n_explicit:
            raise SolverError(f"{path}: {len(p.test_iter)} test_iter for {n_explicit} test nets")
        test_params += [generic] * (len(p.test_iter) - n_explicit)
    elif len(p.test_iter) != n_explicit:
        raise SolverError(f"{path}: {len(p.test_iter)} test_iter entries for {n_explicit} test nets")
    if p.test_state and len(p.test_state) != len(test_params):
        raise SolverError(f"{path}: {len(p.test_state)} test_state entries for {len(test_params)} test nets")
    if test_params and p.test_interval <= 0:
        raise SolverError(f"{path}: test nets need test_interval > 0 (got {p.test_interval})")
    if p.snapshot > 0 and not p.snapshot_prefix and path.startswith("<"):
        raise SolverError(f"{path}: snapshot > 0 needs snapshot_prefix")
    train = _make(train_param, caffe_pb2.TRAIN, [p.train_state], stages, level)
    tests = []
    for i, tp in enumerate(test_params):
        extra = [p.test_state[i]] if p.test_state else []
        tn = _make(tp, caffe_pb2.TEST, extra)
        tn.share_with(train)
        tests.append(tn)
    return train, tests


def load_checked(net, path):
    """net.load_weights, refusing a file that fills none of the net's parameter blobs (another net's
    weights: Caffe would silently ignore every layer). Returns the file's ignored layer names."""
    if not os.path.exists(path):
        raise WeightsError(f"{path}: weights file not found")
    blobs = [b for l in net.layers for b in l.blobs]
    before = [b._version for b in blobs]
    ignored = net.load_weights(path) or []
    if blobs and all(b._version == v for b, v in zip(blobs, before)):
        raise WeightsError(f"{path}: no layer of this file matches a layer with parameters in net "
                           f"'{net.name}' (file layers: {', '.join(ignored[:6]) or 'none'}); wrong weights file?")
    return ignored


def atomic_torch_save(obj, path):
    def write(tmp):
        with open(tmp, "wb") as f:
            torch.save(obj, f)
    atomic_write(path, write, SolverError)
