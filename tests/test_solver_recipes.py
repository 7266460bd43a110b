"""Real solver files: every corpus solver (/work/shared/corpus/*/*solver*.prototxt) loads and yields an
optimizer and rates; the BVLC LeNet and CIFAR-10 quick recipes, verbatim, train on generated data of
the right shape (LMDBs at the paths the recipes name) with falling loss."""
import glob
import os
import shutil

import numpy as np
import pytest
import torch

from recaffe.solver import optim, policies
from recaffe.solver.netsetup import read_solver_param
from recaffe.solver.solver import Solver
from test_solver_helpers import one_thread

from locations import CORPUS, corpus_skip_reason
SOLVERS = sorted(glob.glob(os.path.join(CORPUS, "*", "*solver*.prototxt")))
BVLC = os.path.join(CORPUS, "BVLC__caffe")


@pytest.mark.skipif(not SOLVERS, reason=str(corpus_skip_reason()))
@pytest.mark.parametrize("path", SOLVERS, ids=lambda p: "/".join(p.split("/")[-2:]))
def test_corpus_solver_loads(path):
    p, _ = read_solver_param(path)
    assert p.type in optim.SOLVERS
    policies.check_policy(p, path)
    kw = {} if p.type in ("AdaGrad", "RMSProp") else {"momentum": p.momentum}
    opt = optim.SOLVERS[p.type]([torch.nn.Parameter(torch.ones(3))], lr=p.base_lr, weight_decay=p.weight_decay,
                                regularization_type=p.regularization_type, **kw)
    rates = [policies.learning_rate(p, it)[0] for it in (0, max(p.max_iter - 1, 0))]
    assert rates[0] == pytest.approx(p.base_lr, rel=1e-6) or p.lr_policy in ("sigmoid", "multistep")
    assert all(np.isfinite(rates)) and opt.iteration == 0
    if p.HasField("net_param") or p.HasField("train_net_param"):   # inline nets parse too
        assert len((p.net_param if p.HasField("net_param") else p.train_net_param).layer) > 0


def _recipe_root(tmp, folder, files, db_names, shape, n_train=256, n_test=100, mean_file=None):
    from examples.synthetic_data import write_lmdb
    d = tmp / "examples" / folder
    d.mkdir(parents=True)
    for f in files:
        shutil.copy(os.path.join(BVLC, f"examples__{folder}__{f}"), d / f)
    mean = write_lmdb(str(d / db_names[0]), n_train, *shape, seed=1)
    write_lmdb(str(d / db_names[1]), n_test, *shape, seed=2)
    if mean_file:
        from recaffe.netspec.data.meanfile import write_mean
        write_mean(mean, str(d / mean_file))
    return tmp


def _train(root, solver_file, iters, monkeypatch):
    monkeypatch.chdir(root)
    s = Solver(solver_file)
    s.param.test_interval = 0          # tests are exercised elsewhere; keep this fast
    del s.test_nets[:]
    losses = []
    for _ in range(iters):
        s.step(1)
        losses.append(float(s.net.loss.detach()))
    return s, np.array(losses)


@pytest.mark.skipif(not os.path.isdir(BVLC), reason=str(corpus_skip_reason()))
def test_lenet_recipe_loss_falls(tmp_path, monkeypatch):
    root = _recipe_root(tmp_path, "mnist", ["lenet_solver.prototxt", "lenet_train_test.prototxt"],
                        ["mnist_train_lmdb", "mnist_test_lmdb"], (1, 28, 28))
    with one_thread():
        s, losses = _train(root, "examples/mnist/lenet_solver.prototxt", 60, monkeypatch)
    assert s.net.blobs["data"].shape == (64, 1, 28, 28)
    assert losses[:5].mean() > 2.0 and losses[-5:].mean() < 0.5 * losses[:5].mean(), losses


@pytest.mark.skipif(not os.path.isdir(BVLC), reason=str(corpus_skip_reason()))
def test_cifar10_quick_recipe_loss_falls(tmp_path, monkeypatch):
    root = _recipe_root(tmp_path, "cifar10", ["cifar10_quick_solver.prototxt", "cifar10_quick_train_test.prototxt"],
                        ["cifar10_train_lmdb", "cifar10_test_lmdb"], (3, 32, 32), mean_file="mean.binaryproto")
    with one_thread():
        s, losses = _train(root, "examples/cifar10/cifar10_quick_solver.prototxt", 25, monkeypatch)
    assert s.net.blobs["data"].shape == (100, 3, 32, 32)
    assert losses[-5:].mean() < 0.8 * losses[:5].mean(), losses
