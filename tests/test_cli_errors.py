"""The CLI error convention (tools/_cli.py): bad input -> ONE line `TOOL: error: ...` on stderr, exit
status 2, traceback only with --debug; gflags spellings of flags."""
import os
import subprocess
import sys

import pytest
from google.protobuf import text_format

from recaffe.protos import caffe_pb2, io
from recaffe.tools._cli import FlagParser, UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden", "upgrade")


def _run(args, cwd=ROOT, module="recaffe.tools.upgrade_net_proto_text"):
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", module] + args if module else [sys.executable] + args
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def _one_error_line(p, tool="upgrade_net_proto_text"):
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: error: "), p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("text, expect", [
    ('layer {\n  name: "a"\n  type: "ReLU"\n', r':3:\d+: syntax error: expected "}"'),
    ('layer {\n  convolution_param { kernel_sise: 3 }\n}\n', ":2:23: unknown field 'kernel_sise'"),
    ('layer {\n  pooling_param { pool: MEAN }\n}\n', ":2:19: invalid value MEAN for enum"),
])
def test_bad_prototxt_is_one_line_exit_2(tmp_path, text, expect):
    import re
    src = _write(tmp_path, "bad.prototxt", text)
    line = _one_error_line(_run([src, str(tmp_path / "out.prototxt")]))
    assert re.search(re.escape(src) + expect, line), line
    assert not (tmp_path / "out.prototxt").exists()


def test_missing_file_unwritable_output_and_usage_errors(tmp_path):
    line = _one_error_line(_run([str(tmp_path / "nope.prototxt"), str(tmp_path / "o")]))
    assert "nope.prototxt: cannot read: No such file or directory" in line
    src = os.path.join(GOLDEN, "v1_input_dim.input.prototxt")
    line = _one_error_line(_run([src, str(tmp_path / "no_dir" / "o.prototxt")]))
    assert "no_dir/o.prototxt: cannot write" in line
    assert "missing argument OUT" in _one_error_line(_run([src]))
    assert "unknown flag '--bogus'" in _one_error_line(_run(["--bogus", src, "o"]))
    line = _one_error_line(_run([str(tmp_path / "x.prototxt"), "o"], module="recaffe.tools.upgrade_solver_proto_text"),
                           "upgrade_solver_proto_text")
    assert "x.prototxt: cannot read" in line


def test_debug_shows_traceback(tmp_path):
    p = _run(["--debug", str(tmp_path / "nope.prototxt"), str(tmp_path / "o")])
    assert p.returncode == 2 and "Traceback" in p.stderr
    assert p.stderr.strip().split("\n")[-1].startswith("upgrade_net_proto_text: error: ")


def test_script_form_upgrades_like_caffe(tmp_path):
    """`python tools/upgrade_net_proto_text.py IN OUT` from another folder; output = Caffe's upgrade."""
    out = tmp_path / "v1.prototxt"
    script = os.path.join(ROOT, "tools", "upgrade_net_proto_text.py")
    p = _run([script, os.path.join(GOLDEN, "v1_layers.input.prototxt"), str(out)], cwd=str(tmp_path), module=None)
    assert p.returncode == 0, p.stderr
    caffe = text_format.Parse(open(os.path.join(GOLDEN, "v1_layers.prototxt")).read(), caffe_pb2.NetParameter())
    assert io.read_net(str(out)) == caffe
    # a partial upgrade (Caffe: "not fully compatible", exit 1) still writes its output
    p = _run([os.path.join(GOLDEN, "v0_data.input.prototxt"), str(tmp_path / "v0.prototxt")])
    assert p.returncode == 1 and "warning:" in p.stderr and (tmp_path / "v0.prototxt").exists()


def test_solver_tool_upgrades_solver_type(tmp_path):
    out = tmp_path / "s.prototxt"
    p = _run(["-debug", os.path.join(GOLDEN, "solver_adam.input.prototxt"), str(out)],
             module="recaffe.tools.upgrade_solver_proto_text")
    assert p.returncode == 0, p.stderr
    caffe = text_format.Parse(open(os.path.join(GOLDEN, "solver_adam.prototxt")).read(), caffe_pb2.SolverParameter())
    assert io.read_solver(str(out)) == caffe


def _parser():
    p = FlagParser(prog="t")
    p.add_flag("solver", "")
    p.add_flag("iterations", 50, int)
    p.add_flag("lenient", False, bool)
    p.add_argument("rest", nargs="*")
    return p


@pytest.mark.parametrize("argv", [["-solver=s.pt"], ["--solver=s.pt"], ["-solver", "s.pt"], ["--solver", "s.pt"]])
def test_gflags_spellings(argv):
    a = _parser().parse_args(argv + ["-iterations=7", "pos"])
    assert (a.solver, a.iterations, a.lenient, a.rest) == ("s.pt", 7, False, ["pos"])


@pytest.mark.parametrize("argv, value", [(["-lenient"], True), (["--lenient=true"], True),
                                         (["--lenient=false"], False), (["--nolenient"], False), ([], False)])
def test_gflags_booleans(argv, value):
    a = _parser().parse_args(argv + ["x"])
    assert a.lenient is value and a.rest == ["x"]


def test_flag_usage_errors_are_recaffe_errors():
    with pytest.raises(UsageError, match="-lenient expects true or false, got 'maybe'"):
        _parser().parse_args(["--lenient=maybe"])
    with pytest.raises(UsageError, match="-iterations: invalid int32 value 'many'"):
        _parser().parse_args(["-iterations=many"])


def test_positionals_double_dash_and_negative_values():
    p = FlagParser("t")
    p.add_flag("gpu", "")
    p.add_flag("quiet", False, bool)
    p.add_argument("a")
    p.add_argument("b", nargs="?")
    p.add_argument("rest", nargs="*")
    a = p.parse_args(["x", "-gpu", "-1", "--", "-quiet", "z"])          # -1 is -gpu's value; after -- all positional
    assert (a.gpu, a.quiet, a.a, a.b, a.rest) == ("-1", False, "x", "-quiet", ["z"])
    a = p.parse_args(["-no-quiet", "x"])
    assert (a.quiet, a.a, a.b, a.rest) == (False, "x", None, [])
    with pytest.raises(UsageError, match="missing argument A"):
        p.parse_args(["-quiet"])
    with pytest.raises(UsageError, match="flag -noquiet takes no value"):
        p.parse_args(["-noquiet=1", "x"])
    with pytest.raises(UsageError, match="flag -gpu is missing its value"):
        p.parse_args(["x", "-gpu"])
    q = FlagParser("t")
    q.add_argument("out")
    q.add_argument("logs", nargs="+")
    assert vars(q.parse_args(["o", "l1", "l2"]))["logs"] == ["l1", "l2"]
    with pytest.raises(UsageError, match="missing argument LOGS"):
        q.parse_args(["o"])
    one = FlagParser("t")
    one.add_argument("x")
    with pytest.raises(UsageError, match="unexpected argument 'y'"):
        one.parse_args(["x", "y"])


def test_not_interspersed_stops_at_the_first_positional():
    p = FlagParser("t", interspersed=False)
    p.add_flag("v", False, bool)
    p.add_argument("script")
    p.add_argument("args", nargs="*")
    a = p.parse_args(["-v", "s.py", "-v", "--x=1"])
    assert (a.v, a.script, a.args) == (True, "s.py", ["-v", "--x=1"])


def test_help_exits_0_with_gflags_entries(capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["-h"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "\n    -iterations () type: int32 default: 50\n" in out and '\n    -solver () type: string default: ""\n' in out
    assert "\n    -lenient () type: bool default: false\n" in out
