"""Legacy pycaffe code that drives backward and reshapes by hand, run unchanged on recaffe and compared
with what real pycaffe computed: saliency-style backward from hand-set diffs (full and partial, with and
without a forward first), in-place BatchNorm/Scale chains, a deepdream loop over three input sizes with
forward(end=) / backward(start=), the Solver surface, and pycaffe's Python-layer tests as a script with
its own layer module run through the recaffe-pycaffe launcher.

Goldens: tests/golden/pycaffe/{backward,dream,solver,pylayer}.npz from tests/oracle/make_pycaffe_goldens.py
(section backward), which runs the same scripts of tests/pycaffe_scripts/ inside real pycaffe.
"""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import recaffe
from recaffe.protos.errors import NetError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(HERE, "golden", "pycaffe")
SCRIPTS = os.path.join(HERE, "pycaffe_scripts")


def _script(stem):
    spec = importlib.util.spec_from_file_location("pycaffe_script_" + stem, os.path.join(SCRIPTS, stem + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _golden(stem):
    with np.load(os.path.join(GOLDEN, stem + ".npz")) as z:
        return {k: z[k] for k in z.files}


def assert_matches(ours, theirs, rtol=1e-4, atol=1e-5):
    assert sorted(ours) == sorted(theirs)
    for key, want in theirs.items():
        got = np.asarray(ours[key])
        if want.dtype.kind in "USb":
            assert got.tolist() == want.tolist(), key
            continue
        assert got.shape == want.shape, (key, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=key)


@pytest.fixture(scope="module")
def backward_run(tmp_path_factory):
    return _script("backward").run(recaffe, str(tmp_path_factory.mktemp("backward")))


def test_backward_from_hand_set_diffs_matches_pycaffe(backward_run):
    gold = _golden("backward")
    assert_matches(backward_run, gold)
    # the goldens are not degenerate: hand-set diffs reach the data; without force_backward they do not
    assert np.abs(gold["nofwd_conv_diff"]).max() > 0.1 and np.abs(gold["partial_diff_data"]).max() > 0.1
    assert np.abs(gold["sal_data_diff"]).max() > 1e-3 and not gold["noforce_data_diff"].any()
    assert not gold["cleared"].any() and np.abs(gold["bn_global_pdiff_scale_0"]).max() > 1e-3


def test_deepdream_loop_over_three_sizes_matches_pycaffe(tmp_path):
    ours = _script("dream").run(recaffe, str(tmp_path))
    gold = _golden("dream")
    assert_matches(ours, gold)
    assert list(gold["9x10_conv3_shape"]) == [1, 8, 5, 5] and np.abs(gold["9x10_grad_1"]).mean() > 0.01


def test_small_input_fails_only_past_end(tmp_path):
    """At 9x10 the layers up to 'mix' run; a full forward reaches conv3, which cannot take the input:
    a one-line error naming the layer (Caffe aborts there)."""
    dream = _script("dream")
    net = recaffe.Net(dream.write(str(tmp_path), "dream.prototxt", dream.NET), recaffe.TEST)
    tnet = net.torch_net
    net.blobs["data"].reshape(1, 3, 9, 10)
    net.forward(end="mix")
    assert net.torch_net is tnet                      # no rebuild: the same module and parameters
    assert net.blobs["mix"].data.shape == (1, 8, 2, 3)
    with pytest.raises(NetError) as e:
        net.forward()
    assert "conv3" in str(e.value) and "\n" not in str(e.value)
    net.blobs["data"].reshape(1, 3, 32, 32)
    assert net.forward()["prob"].shape == (1, 10)


def test_net_reshape_sets_shapes_without_computing(tmp_path):
    """Net::Reshape: every blob takes its new shape, nothing runs (the Input data stays as written)."""
    dream = _script("dream")
    net = recaffe.Net(dream.write(str(tmp_path), "dream.prototxt", dream.NET), recaffe.TEST)
    dream.fill_params(net, 21, scale=0.3)
    calls = []
    net.before_forward(calls.append)
    net.blobs["data"].reshape(2, 3, 32, 32)
    net.blobs["data"].data[...] = 1
    net.reshape()
    assert calls == []
    assert net.blobs["conv1"].data.shape == (2, 6, 32, 32) and net.blobs["prob"].data.shape == (2, 10)
    assert net.blobs["conv3"].data.shape == (2, 8, 5, 5) and not net.blobs["conv3"].data.any()
    net.forward()
    assert calls == list(range(len(net.layers))) and net.blobs["conv3"].data.any()
    net.blobs["data"].reshape(1, 3, 40, 36)          # ip's weights fix the size past pool3, as in Caffe
    with pytest.raises(NetError, match="layer 'ip'"):
        net.reshape()


def test_callbacks_run_around_each_layer(backward_run, tmp_path):
    """before/after_forward and before/after_backward get each layer index in Caffe's order; the
    layer-by-layer forward they need gives the same numbers."""
    bw = _script("backward")
    net = recaffe.Net(bw.write(str(tmp_path), "deploy.prototxt", bw.DEPLOY % "force_backward: true"), recaffe.TEST)
    bw.fill_params(net, 6)
    events = []
    for kind in ("before_forward", "after_forward", "before_backward", "after_backward"):
        getattr(net, kind)(lambda i, kind=kind: events.append((kind, i)))
    probs = net.forward(data=bw.array(7, net.blobs["data"].data.shape, 0, 1))["prob"]
    np.testing.assert_allclose(probs, backward_run["sal_prob"], rtol=1e-5)
    n = len(net.layers)
    assert events == [(k, i) for i in range(n) for k in ("before_forward", "after_forward")]
    del events[:]
    net.backward(start="ip", end="conv2")
    start, end = net._layer_names.index("ip"), net._layer_names.index("conv2")
    assert events == [(k, i) for i in range(start, end - 1, -1) for k in ("before_backward", "after_backward")]


def test_solver_surface_matches_pycaffe(tmp_path):
    ours = _script("solver").run(recaffe, str(tmp_path))
    assert_matches(ours, _golden("solver"))
    solver = recaffe.get_solver(os.path.join(str(tmp_path), "solver_Adam.prototxt"))
    assert isinstance(solver, recaffe.AdamSolver) and solver.type == "Adam"


def test_hand_set_diff_on_a_python_layer_net_without_forward(tmp_path):
    """pycaffe's test_python_layer test_backward, in-process: 10**3 * x reaches the data."""
    script = _script("pylayer")
    from recaffe._alias import install_caffe_alias
    from recaffe.netspec.net.layers.python import allow_python_layers
    install_caffe_alias()
    allow_python_layers(True)
    try:
        ours = script.run(recaffe, str(tmp_path))
    finally:
        allow_python_layers(None)
    assert_matches(ours, _golden("pylayer"))
    assert (ours["nofwd_data_diff"] == 7000).all()


# ------------------------------------------------------------------------------- the launcher

def _launch(*args, env=None):
    full_env = dict(os.environ, PYTHONPATH=ROOT)
    full_env.pop("RECAFFE_ALLOW_PYTHON_LAYERS", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "pycaffe.py"), *args], capture_output=True,
                          text=True, env=full_env, timeout=300, cwd=str(HERE))


def _printed(stdout):
    out = {}
    for line in stdout.splitlines():
        key, _, values = line.partition(" ")
        out[key] = np.array(eval(values), dtype=np.float64)      # a list literal the script printed
    return out


@pytest.mark.parametrize("opt_in", [("--allow-python-layers",), ("env",)])
def test_launcher_runs_script_with_own_python_layer_module(opt_in):
    script = os.path.join(SCRIPTS, "pylayer.py")
    if opt_in == ("env",):
        r = _launch(script, env={"RECAFFE_ALLOW_PYTHON_LAYERS": "1"})
    else:
        r = _launch(*opt_in, script)
    assert r.returncode == 0, r.stderr
    got, gold = _printed(r.stdout), _golden("pylayer")
    assert sorted(got) == sorted(gold)
    for key, want in gold.items():
        np.testing.assert_allclose(got[key], want.ravel().astype(np.float64), err_msg=key)


def test_launcher_without_opt_in_names_it():
    r = _launch(os.path.join(SCRIPTS, "pylayer.py"))
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "refusing to run Python layer code" in last and "RECAFFE_ALLOW_PYTHON_LAYERS=1" in last
    r = _launch("--no-python-layers", os.path.join(SCRIPTS, "pylayer.py"), env={"RECAFFE_ALLOW_PYTHON_LAYERS": "1"})
    assert r.returncode != 0 and "RECAFFE_ALLOW_PYTHON_LAYERS=1" in r.stderr


def test_backward_twice_and_params_accumulate(tmp_path):
    """Caffe's Backward overwrites bottom diffs and adds into param diffs: two passes over one forward
    give the same data diff and twice the param diff."""
    bw = _script("backward")
    net = recaffe.Net(bw.write(str(tmp_path), "lossnet.prototxt", bw.LOSSNET), recaffe.TRAIN)
    bw.fill_params(net, 1)
    net.blobs["data"].data[...] = bw.array(2, net.blobs["data"].data.shape)
    net.forward()
    first = net.backward()["data"].copy()
    w1 = net.params["ip"][0].diff.copy()
    second = net.backward()["data"].copy()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(net.params["ip"][0].diff, 2 * w1, rtol=1e-6)
    assert isinstance(net.params["ip"][0].diff, np.ndarray) and torch.is_tensor(net.torch_net.layers[2].blobs[0])
