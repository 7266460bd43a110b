"""Solver construction (solver/netsetup.py, Solver::InitTrainNet / InitTestNets): net sources, test nets
sharing the train net's weights, test_state, random_seed, solver_type upgrade."""
import os

import numpy as np
import pytest

from recaffe.protos.errors import SolverError
from recaffe.solver.solver import Solver
from test_solver_helpers import CASES, one_thread, write_case

STAGED = """
layer { name: "only_a" type: "Power" bottom: "ip2" top: "ip2_a" include { stage: "a" } }
"""


def _net_text(tmp):
    write_case(tmp, "sgd")
    return open(os.path.join(tmp, "net.prototxt")).read()


def test_inline_net_param_two_test_nets_with_states(tmp_path):
    net = _net_text(tmp_path)
    text = (f"net_param {{ {net} {STAGED} }}\n{CASES['sgd']['solver']}\n"
            "test_iter: 1 test_iter: 2 test_interval: 5 test_state { stage: 'a' } test_state { }\n")
    s = Solver(text)
    assert len(s.test_nets) == 2
    assert "only_a" in s.test_nets[0].layer_names and "only_a" not in s.test_nets[1].layer_names
    assert "only_a" not in s.net.layer_names            # train state has no stage 'a'
    for tn in s.test_nets:                               # weights are the train net's tensors
        for layer in ("conv1", "ip1", "ip2"):
            assert all(a is b for a, b in zip(tn.params[layer], s.net.params[layer]))
    with one_thread():
        s.step(1)
        scores = s.test(1)
    assert set(scores) == {"loss"} and np.isfinite(scores["loss"][0])


def test_train_net_and_test_net_files_relative_to_solver(tmp_path, monkeypatch):
    write_case(tmp_path, "sgd")
    (tmp_path / "s.prototxt").write_text('train_net: "net.prototxt" test_net: "net.prototxt" test_iter: 1 '
                                         'test_interval: 10 ' + CASES["sgd"]["solver"])
    monkeypatch.chdir("/")
    s = Solver(str(tmp_path / "s.prototxt"))
    assert s.net.phase == "TRAIN" and s.test_nets[0].phase == "TEST"


def test_random_seed_makes_fillers_repeatable(tmp_path):
    path = write_case(tmp_path, "sgd", "random_seed: 7")
    a, b = Solver(path), Solver(path)
    c = Solver(write_case(tmp_path, "sgd", "random_seed: 8"))
    wa, wb, wc = (s.net.params["conv1"][0].detach().numpy() for s in (a, b, c))
    assert np.array_equal(wa, wb) and not np.array_equal(wa, wc)


def test_legacy_solver_type_enum(tmp_path):
    s = Solver(write_case(tmp_path, "sgd", solver_text=CASES["adam"]["solver"].replace('type: "Adam"', "solver_type: ADAM")))
    assert s.param.type == "Adam" and type(s.optimizer).__name__ == "Adam"


@pytest.mark.parametrize("extra,needle", [
    ("test_iter: 1", "test_interval"),
    ('net_param { name: "x" } train_net: "y"', "exactly one"),
    ("average_loss: 0", "average_loss"),
    ("test_iter: 1 test_interval: 5 test_state { } test_state { }", "test_state"),
])
def test_bad_solver_settings(tmp_path, extra, needle):
    with pytest.raises(SolverError, match=needle):
        Solver(write_case(tmp_path, "sgd", extra))
