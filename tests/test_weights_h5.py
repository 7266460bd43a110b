"""HDF5 weights (.caffemodel.h5) and HDF5 solver snapshots against real Caffe (goldens by
tests/oracle/make_h5_goldens.py): we read Caffe's files to its values, Caffe read ours to our values
(recorded by the oracle, with the layout of the files it read), a solver resumed from Caffe's HDF5
snapshot continues with the losses of Caffe's own resumed run, and bad files fail as Caffe's do."""
import json
import os
import shutil
import sys

import h5py
import numpy as np
import pytest
import torch

from recaffe.netspec import Net
from recaffe.netspec.weights import h5 as weights_h5
from recaffe.protos.errors import SolverError, WeightsError
from recaffe.solver.solver import Solver
from test_solver_helpers import GOLDEN as SOLVER_GOLDEN, one_thread, write_case

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "oracle"))
from make_h5_goldens import listing as _oracle_listing  # noqa: E402

G = os.path.join(HERE, "golden", "h5")
SMALL = os.path.join(HERE, "golden", "weights", "small.prototxt")
PERM = os.path.join(HERE, "golden", "share", "permissive.prototxt")
INIT = os.path.join(SOLVER_GOLDEN, "init.caffemodel")
SNAP_AT, RESUME_TO = 48, 60


@pytest.fixture(scope="module")
def gold():
    with np.load(os.path.join(G, "caffe.npz")) as z:
        return {k: z[k] for k in z.files}


def listing(path):
    """The oracle's listing() (tests/oracle/make_h5_goldens.py): sorted 'path shape dtype' lines."""
    return list(_oracle_listing(path))


def values(net):
    return {f"{n}.{i}": p.detach().numpy().copy() for n, blobs in net.params.items() for i, p in enumerate(blobs)}


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


# -- models ------------------------------------------------------------------------------------------
def test_read_caffe_permissive_model_sharers_filled_from_owners(tmp_path):
    with np.load(os.path.join(HERE, "golden", "share", "permissive.npz")) as z:
        want = {k[2:].replace("_", ".", 1): z[k] for k in z.files if k.startswith("p_")}
    path = os.path.join(G, "caffe_permissive.caffemodel.h5")
    assert "data/ipB/0 (6, 10) float32" not in listing(path)        # Caffe omits the sharer's dataset
    net = Net(PERM, phase="TRAIN")
    assert net.load_weights(path) == []
    got = values(net)
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    # Caffe decides by content, not by name (H5Fis_hdf5): the same file named .caffemodel
    other = tmp_path / "renamed.caffemodel"
    shutil.copy(path, other)
    net = Net(PERM, phase="TRAIN")
    net.load_weights(str(other))
    np.testing.assert_array_equal(values(net)["ipB.0"], want["ipB.0"])


@pytest.mark.parametrize("tag", ["small", "perm"])
def test_caffe_reads_what_we_write(tmp_path, gold, tag):
    """Same recipes as make_h5_goldens.ours(): the file we write now has the layout of the one Caffe read,
    and Caffe read exactly our values (sharers as Caffe sees them)."""
    if tag == "small":
        net, rng = Net(SMALL, phase="TEST"), np.random.RandomState(5)
        targets = [p for blobs in net.params.values() for p in blobs]
    else:
        net, rng = Net(PERM, phase="TRAIN"), np.random.RandomState(11)
        targets = [net.layers[e.layer_index].blobs[e.blob_index] for e in net._learnable]
    with torch.no_grad():
        for p in targets:
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
    out = tmp_path / "ours.caffemodel.h5"
    net.save_weights(str(out))
    assert listing(out) == list(gold["listing_ours_" + tag])
    read_by_caffe = {k[len(tag) + 1:]: v for k, v in gold.items() if k.startswith(tag + ".")}
    ours = values(net)
    assert sorted(ours) == sorted(read_by_caffe)
    for k, v in read_by_caffe.items():
        np.testing.assert_array_equal(ours[k], v, err_msg=k)
    again = Net(SMALL if tag == "small" else PERM, phase="TEST" if tag == "small" else "TRAIN")
    again.load_weights(str(out))
    for k, v in values(again).items():
        np.testing.assert_array_equal(v, ours[k], err_msg=k)


def test_diff_layout_matches_caffes_snapshot_diff(tmp_path, gold):
    """/diff holds every blob (sharers too), /data only owners: the layout of Caffe's snapshot_diff model."""
    net = Net(PERM, phase="TRAIN")
    path = tmp_path / "d.caffemodel.h5"
    weights_h5.save(net, str(path), write_diff=True)
    assert listing(path) == list(gold["listing_caffe_diff"])


def test_facade_save_hdf5_and_load_hdf5_whatever_the_name(tmp_path):
    import recaffe as caffe
    net = caffe.Net(PERM, caffe.TRAIN)
    net.params["ipA"][0].data[...] = np.arange(60, dtype=np.float32).reshape(10, 6)
    path = str(tmp_path / "weights.bin")
    net.save_hdf5(path)
    assert h5py.is_hdf5(path)
    other = caffe.Net(PERM, caffe.TRAIN)
    other.load_hdf5(path)
    np.testing.assert_array_equal(other.params["ipB"][0].data, np.arange(60, dtype=np.float32).reshape(6, 10))
    np.testing.assert_array_equal(other.params["conv"][1].data, net.params["conv"][1].data)


# -- errors (Caffe's fatal lines recorded by the oracle) ---------------------------------------------
ONE = ('name: "one" layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 6 } } }\n'
       'layer { name: "%s" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }\n')


def _model(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f[f"data/ip/{k[1:]}"] = v


def test_bad_models_fail_as_caffe_does(tmp_path):
    caffe = json.load(open(os.path.join(G, "errors.json")))
    net = Net(ONE % "ip")
    cases = {"shape": dict(d0=np.zeros((1, 1, 3, 6), np.float32), d1=np.zeros(3, np.float32)),
             "missing": dict(d0=np.zeros((3, 6), np.float32)),
             "extra": dict(d0=np.zeros((3, 6), np.float32), d1=np.zeros(3, np.float32), d2=np.zeros(3, np.float32))}
    expect = {"shape": r"'ip'.*shape mismatch.*file shape 1 1 3 6 \(18\), net shape 3 6 \(18\)",
              "missing": r"incompatible number of blobs for layer 'ip'.*no dataset '1'",
              "extra": r"incompatible number of blobs for layer 'ip': file has 3, net has 2"}
    for k, body in cases.items():
        assert caffe["load_" + k]     # Caffe refused this file as well
        path = tmp_path / f"{k}.caffemodel.h5"
        _model(path, **body)
        with pytest.raises(WeightsError, match=expect[k]):
            net.load_weights(str(path))
    assert "shape mismatch" in caffe["load_shape"] and "1 1 3 6 (18)" in caffe["load_shape"]
    assert "Error saving weights" in caffe["save_slash"]
    with pytest.raises(WeightsError, match="'a/b'.*HDF5 group name"):
        Net(ONE % "a/b").save_weights(str(tmp_path / "slash.h5"))
    assert not (tmp_path / "slash.h5").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_an_hdf5_file_that_is_not_a_model_is_refused():
    with pytest.raises(WeightsError, match="no /data group"):
        Net(PERM, phase="TRAIN").load_weights(os.path.join(G, "snap_adam_iter_48.solverstate.h5"))


# -- solver snapshots ---------------------------------------------------------------------------------
def _losses(solver, until):
    out = []
    while solver.iter < until:
        solver.step(1)
        out.append(float(solver.net.blobs["loss"].detach()))
    return np.array(out)


@pytest.mark.parametrize("case", ["multistep", "adam"])
def test_resume_from_caffe_hdf5_snapshot_continues_caffes_resumed_run(tmp_path, gold, case):
    state = os.path.join(G, f"snap_{case}_iter_{SNAP_AT}.solverstate.h5")
    s = Solver(write_case(tmp_path, case, " snapshot_format: HDF5"))
    cwd = os.getcwd()
    os.chdir(G)   # learned_net is the bare name Caffe wrote
    try:
        with one_thread():
            s.restore(state)
            assert s.iter == SNAP_AT
            losses = _losses(s, RESUME_TO)
    finally:
        os.chdir(cwd)
    assert s.current_step == (2 if case == "multistep" else 0)    # stepvalues 20, 50: two passed
    assert rel(losses, gold[case + "_resumed"]) < 1e-4
    assert rel(gold[case + "_resumed"], gold[case + "_full"]) < 1e-4   # Caffe's resume reproduced its run


@pytest.mark.parametrize("case", ["multistep", "adam"])
def test_our_hdf5_snapshot_is_caffes_layout_and_caffe_continues_it(tmp_path, gold, case):
    cwd = os.getcwd()
    s = Solver(write_case(tmp_path, case, f'snapshot_prefix: "ours_{case}" snapshot_format: HDF5'))
    s.load_weights(INIT)
    with one_thread():
        s.step(SNAP_AT)
    os.chdir(tmp_path)
    try:
        model, state = s.snapshot()
    finally:
        os.chdir(cwd)
    assert (model, state) == (f"ours_{case}_iter_48.caffemodel.h5", f"ours_{case}_iter_48.solverstate.h5")
    state_path = tmp_path / state
    # the layout Caffe restored (and Caffe's own: same datasets, shapes, types; learned_net's length aside)
    assert listing(state_path) == list(gold["listing_ours_state_" + case])
    strip = lambda lines: [l for l in lines if not l.startswith("learned_net")]
    assert strip(listing(state_path)) == strip(list(gold["listing_caffe_state_" + case]))
    with h5py.File(state_path, "r") as f:
        t = f["learned_net"].id.get_type()
        assert t.get_strpad() == h5py.h5t.STR_NULLTERM and t.get_size() == len(model) + 1
        assert f["learned_net"][()] == model.encode()
        assert int(f["iter"][0]) == int(gold[case + "_ours_iter"]) == SNAP_AT
    # Caffe read our weights exactly, and continued as its own uninterrupted run did
    for k, v in values(s.net).items():
        layer, i = k.split(".")
        c = gold[f"{case}_ours_w_{layer}_{i}"]
        assert np.max(np.abs(v - c)) <= 1e-5 * np.max(np.abs(c)), k
    assert rel(gold[case + "_ours_resumed"], gold[case + "_full"]) < 1e-4
    # and Caffe's snapshot history matches ours
    ours = weights_h5.read_solverstate(str(state_path))
    caffe = weights_h5.read_solverstate(os.path.join(G, f"snap_{case}_iter_{SNAP_AT}.solverstate.h5"))
    assert ours[0] == caffe[0] and ours[2] == caffe[2] and len(ours[3]) == len(caffe[3])
    for h, c in zip(ours[3], caffe[3]):
        assert h.shape == c.shape and np.max(np.abs(h - c)) <= 1e-4 * max(np.max(np.abs(c)), 1e-6)
    # our own restore of it continues identically to the uninterrupted run
    with one_thread():
        full = _losses(s, RESUME_TO)
        r = Solver(write_case(tmp_path, case, " snapshot_format: HDF5"))
        os.chdir(tmp_path)
        try:
            r.restore(state)
        finally:
            os.chdir(cwd)
        assert np.array_equal(_losses(r, RESUME_TO), full)


def test_hdf5_state_with_wrong_history_count_is_refused(tmp_path):
    caffe = json.load(open(os.path.join(G, "errors.json")))
    assert "Incorrect length of history blobs" in caffe["state_count"] and "(6 vs. 12)" in caffe["state_count"]
    s = Solver(write_case(tmp_path, "adam"))
    cwd = os.getcwd()
    os.chdir(G)
    try:
        with pytest.raises(SolverError, match="6 history blobs, this solver/net needs 12"):
            s.restore(os.path.join(G, f"snap_multistep_iter_{SNAP_AT}.solverstate.h5"))
    finally:
        os.chdir(cwd)
