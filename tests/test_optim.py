"""Caffe's update rules (solver/optim.py) used on their own, against the formulas of caffe-spec 3.3/3.5
written out in numpy (float64) here; and the ways they differ from torch.optim."""
import numpy as np
import pytest
import torch

from recaffe.protos.errors import SolverError
from recaffe.solver import optim

RNG = np.random.RandomState(5)
W0 = RNG.randn(3, 4).astype(np.float32)
GRADS = [RNG.randn(3, 4).astype(np.float32) for _ in range(6)]
RATES = [0.1, 0.1, 0.05, 0.05, 0.02, 0.01]   # a changing schedule


def reference(kind, lr_mult=1.0, decay=0.0, decay_mult=1.0, reg="L2", mu=0.9, mu2=0.999, delta=1e-8, rho=0.99,
              iter_size=1, clip=-1.0):
    w = W0.astype(np.float64)
    h1, h2 = np.zeros_like(w), np.zeros_like(w)
    for t, (g, rate) in enumerate(zip(GRADS, RATES)):
        g = g.astype(np.float64) * iter_size            # the accumulated (summed) gradient
        if clip >= 0 and np.sqrt((g ** 2).sum()) > clip:
            g = g * clip / np.sqrt((g ** 2).sum())
        g = g / iter_size
        d = decay * decay_mult
        g = g + d * (w if reg == "L2" else np.sign(w))
        lr = rate * lr_mult
        if kind == "SGD":
            h1 = mu * h1 + lr * g
            step = h1
        elif kind == "Nesterov":
            prev = h1.copy()
            h1 = mu * h1 + lr * g
            step = (1 + mu) * h1 - mu * prev
        elif kind == "AdaGrad":
            h1 = h1 + g * g
            step = lr * g / (np.sqrt(h1) + delta)
        elif kind == "RMSProp":
            h1 = rho * h1 + (1 - rho) * g * g
            step = lr * g / (np.sqrt(h1) + delta)
        elif kind == "AdaDelta":
            h1 = mu * h1 + (1 - mu) * g * g
            u = g * np.sqrt((h2 + delta) / (h1 + delta))
            h2 = mu * h2 + (1 - mu) * u * u
            step = lr * u
        else:   # Adam, t = iteration + 1
            h1 = mu * h1 + (1 - mu) * g
            h2 = mu2 * h2 + (1 - mu2) * g * g
            k = t + 1
            step = lr * np.sqrt(1 - mu2 ** k) / (1 - mu ** k) * h1 / (np.sqrt(h2) + delta)
        w = w - step
    return w


def ours(kind, lr_mult=1.0, decay=0.0, decay_mult=1.0, reg="L2", mu=0.9, iter_size=1, clip=-1.0, **kw):
    p = torch.nn.Parameter(torch.tensor(W0))
    if kind in ("AdaGrad", "RMSProp"):
        mu = 0.0
    opt = optim.SOLVERS[kind]([{"params": [p], "lr_mult": lr_mult, "decay_mult": decay_mult}], momentum=mu,
                              weight_decay=decay, regularization_type=reg, iter_size=iter_size,
                              clip_gradients=clip, **kw)
    for g, rate in zip(GRADS, RATES):
        p.grad = None
        for _ in range(iter_size):   # accumulate like iter_size backward passes
            p.grad = torch.tensor(g).clone() if p.grad is None else p.grad + torch.tensor(g)
        for group in opt.param_groups:
            group["lr"] = rate
        opt.step()
    return p.detach().numpy()


KINDS = ["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("variant", [dict(), dict(decay=0.01, decay_mult=2.0, lr_mult=0.5),
                                     dict(decay=0.01, reg="L1"), dict(iter_size=2, clip=1.5)])
def test_update_rule(kind, variant):
    ref_kw = dict(variant)
    if kind in ("AdaGrad", "RMSProp"):
        ref_kw["mu"] = 0.0
    np.testing.assert_allclose(ours(kind, **variant), reference(kind, **ref_kw), rtol=2e-5, atol=2e-6)


def test_differs_from_torch_sgd_when_rate_changes():
    """Caffe folds the rate into the history; torch.optim.SGD scales the history by the current rate."""
    p = torch.nn.Parameter(torch.tensor(W0))
    t = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    for g, rate in zip(GRADS, RATES):
        p.grad = torch.tensor(g)
        t.param_groups[0]["lr"] = rate
        t.step()
    caffe = reference("SGD")
    assert np.abs(p.detach().numpy() - caffe).max() > 1e-2
    np.testing.assert_allclose(ours("SGD"), caffe, rtol=2e-5, atol=2e-6)


def test_adam_state_dict_keeps_iteration():
    p = torch.nn.Parameter(torch.tensor(W0))
    opt = optim.Adam([p], lr=0.01, momentum=0.9)
    p.grad = torch.tensor(GRADS[0])
    opt.step()
    q = torch.nn.Parameter(torch.tensor(W0))
    other = optim.Adam([q], lr=0.01, momentum=0.9)
    other.load_state_dict(opt.state_dict())
    assert other.iteration == 1
    assert torch.equal(other.state[q]["m"], opt.state[p]["m"])


def test_frozen_param_skipped_by_sgd_but_regularised_history_for_adagrad():
    frozen = torch.nn.Parameter(torch.tensor(W0), requires_grad=False)
    sgd = optim.SGD([{"params": [frozen], "lr_mult": 0.0}], lr=0.1, momentum=0.9, weight_decay=0.1)
    sgd.step()
    assert "history" not in sgd.state[frozen] and torch.equal(frozen, torch.tensor(W0))
    ada = optim.AdaGrad([{"params": [frozen], "lr_mult": 0.0}], lr=0.1, weight_decay=0.1)
    ada.step()   # Caffe: diff = 0 + decay*w enters the history; the weight does not move
    np.testing.assert_allclose(ada.state[frozen]["history"].numpy(), (0.1 * W0) ** 2, rtol=1e-6)
    assert torch.equal(frozen, torch.tensor(W0))


@pytest.mark.parametrize("cls,kw", [(optim.AdaGrad, dict(momentum=0.9)), (optim.RMSProp, dict(momentum=0.5)),
                                    (optim.RMSProp, dict(rms_decay=1.0)), (optim.SGD, dict(regularization_type="L3"))])
def test_constructor_checks(cls, kw):
    with pytest.raises(SolverError):
        cls([torch.nn.Parameter(torch.zeros(2))], **kw)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("variant", [dict(decay=0.01, decay_mult=2.0), dict(decay=0.01, reg="L1", iter_size=2)])
def test_large_params_update_in_pieces_with_identical_results(kind, variant, monkeypatch):
    """Parameters of >= 2 * optim._CHUNK elements are updated piece by piece (for the cache): the
    result is bit-identical to the whole-tensor update, and matches the reference formula."""
    monkeypatch.setattr(optim, "_CHUNK", 5)           # 12 elements: pieces of 5, 5, 2
    pieces = ours(kind, **variant)
    monkeypatch.setattr(optim, "_CHUNK", 1 << 20)
    assert np.array_equal(pieces, ours(kind, **variant))
    ref_kw = dict(variant, mu=0.0) if kind in ("AdaGrad", "RMSProp") else variant
    np.testing.assert_allclose(pieces, reference(kind, **ref_kw), rtol=2e-5, atol=2e-6)
