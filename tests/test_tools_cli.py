"""The command lines as a user runs them: the executables in tools/ from the repository root, their
-help (gflags' layout, checked against real Caffe's `caffe -helpshort`), `caffe test` against Caffe's log,
and the error boundary (tools/_cli.py: bad input -> one line, exit 2; an unforeseen error -> one line and
the --debug hint, exit 1; Ctrl-C -> exit 130; --debug / RECAFFE_DEBUG=1 -> the traceback).

Goldens: tests/golden/cli/ (tests/oracle/make_cli_goldens.py, real Caffe 1.0) and tests/golden/solver/
(the sgd trajectory of tests/oracle/make_solver_goldens.py)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from recaffe.netspec.net.net import Net
from recaffe.solver.log import capture
from recaffe.tools import caffe as _t_caffe
from recaffe.tools import test as _t_test
from test_solver_helpers import GOLDEN, one_thread, rel_err, write_case

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI_GOLDEN = os.path.join(ROOT, "tests", "golden", "cli")
BIN = os.path.dirname(sys.executable)
GLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [\w.]+:\d+\] (.*)$")
NUM = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
HINT = "rerun with --debug (or RECAFFE_DEBUG=1) for the traceback"
LAUNCHERS = sorted(n for n in os.listdir(os.path.join(ROOT, "tools"))
                   if "." not in n and not n.startswith("_") and os.path.isfile(os.path.join(ROOT, "tools", n)))


def _env(**extra):
    """The venv first on PATH (the launchers' `#!/usr/bin/env python3`), one thread, no debug."""
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""), OMP_NUM_THREADS="1", **extra)
    env.pop("RECAFFE_DEBUG", None)
    env.update(extra)
    return env


def tool(*args, env=None, cwd=ROOT):
    """Run ``tools/<args[0]> args[1:]`` from the repository root, as the design card's commands do."""
    return subprocess.run([f"tools/{args[0]}", *args[1:]], cwd=cwd, env=env or _env(), capture_output=True,
                          text=True, timeout=300)


def messages(text):
    """glog messages of a stderr text; the other lines separately."""
    lines = [l for l in text.splitlines() if l.strip()]
    return [GLOG.match(l).group(1) for l in lines if GLOG.match(l)], [l for l in lines if not GLOG.match(l)]


# ----------------------------------------------------------------------------- executables


def test_every_tool_has_an_executable_launcher():
    """tools/<name>: committed executable (mode 100755), the same launcher text for every tool, and a
    recaffe.tools.<name>.cli entry; every console script enters through cli() too."""
    expected = {"caffe", "train", "test", "time", "convert_imageset", "compute_image_mean", "classify", "draw_net",
                "plot_training_log", "upgrade_net_proto_text", "upgrade_solver_proto_text", "deploy_from_train_val",
                "pycaffe", "demo"}
    assert expected <= set(LAUNCHERS)
    git = subprocess.run(["git", "ls-files", "-s", "tools"], cwd=ROOT, capture_output=True, text=True)
    modes = {parts[3]: parts[0] for parts in (line.split(None, 3) for line in git.stdout.splitlines())}
    import importlib
    texts = set()
    for name in LAUNCHERS:
        path = os.path.join(ROOT, "tools", name)
        assert os.access(path, os.X_OK), path
        if git.returncode == 0:     # a git checkout: the exec bit must be committed (a tarball has only the file's)
            assert modes.get(f"tools/{name}") == "100755", f"tools/{name} is committed as {modes.get('tools/' + name)}"
        text = open(path).read()
        assert text.startswith("#!/usr/bin/env python3\n")
        assert f"    from recaffe.tools import {name} as _tool\n" in text
        texts.add(re.sub(r'^"""tools/.*?"""$|(?<=from recaffe\.tools import )\w+', "", text, flags=re.S | re.M))
        assert callable(importlib.import_module(f"recaffe.tools.{name}").cli)
    assert len(texts) == 1, "the launchers differ beyond their name and docstring"
    setup = open(os.path.join(ROOT, "setup.py")).read()
    scripts = re.findall(r'"(recaffe[\w-]*)=recaffe\.tools\.(\w+):(\w+)"', setup)
    assert len(scripts) >= 14 and all(fn == "cli" for _, _, fn in scripts), scripts


def test_launcher_takes_its_folder_off_sys_path():
    """tools/ holds time.py, test.py, caffe.py: a launcher must not leave it on sys.path (simulated: tools/ first on
    sys.path, as `python tools/caffe` puts it, then the launcher runs)."""
    code = ("import runpy, sys, os; sys.path.insert(0, os.path.abspath('tools')); sys.argv = ['tools/caffe', '-help']\n"
            "try:\n    runpy.run_path('tools/caffe', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
            "here = os.path.abspath('tools')\n"
            "print('ON_PATH' if any(os.path.abspath(p) == here for p in sys.path) else 'OFF', code)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "OFF 0"


def test_launcher_without_recaffe_says_how_to_install():
    """Python without site-packages (-S): one line naming the pip command, exit 2."""
    r = subprocess.run([sys.executable, "-S", "tools/train", "-solver=x"], cwd=ROOT, env=_env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install -c constraints.txt -e ." in lines[0] and "Traceback" not in r.stderr


def test_tools_train_from_repo_root_matches_caffe(tmp_path):
    """The design card's command: `tools/train -solver=solver.prototxt -weights=x.pth` from the repository root,
    .pth weights written by our own save (Caffe's init.caffemodel, re-saved). The logged losses at every display
    and the final weights are Caffe's sgd trajectory (tests/golden/solver/sgd.npz)."""
    solver = write_case(tmp_path, "sgd", f'display: 10 snapshot_prefix: "{tmp_path}/s"')
    net = Net(str(tmp_path / "net.prototxt"), phase="TRAIN")
    net.load_weights(os.path.join(GOLDEN, "init.caffemodel"))
    pth = str(tmp_path / "init.pth")
    net.save_weights(pth)
    r = tool("train", f"-solver={solver}", f"-weights={pth}")
    assert r.returncode == 0, r.stderr
    msgs, other = messages(r.stderr)
    assert other == [], other
    golden = np.load(os.path.join(GOLDEN, "sgd.npz"))
    logged = {int(m.group(1)): float(m.group(2)) for m in
              (re.match(r"Iteration (\d+)(?: \(.*\))?, loss = (\S+)$", x) for x in msgs) if m}
    assert sorted(logged) == list(range(0, 101, 10))
    for it, loss in logged.items():
        if it < 100:     # the loss at 100 is a forward after the last update: not in Caffe's 100 steps
            assert abs(loss - golden["loss"][it]) < 1e-4 * golden["loss"][it], (it, loss, golden["loss"][it])
    assert np.isfinite(logged[100]) and msgs[-1] == "Optimization Done."
    final = Net(str(tmp_path / "net.prototxt"), phase="TRAIN")
    final.load_weights(str(tmp_path / "s_iter_100.caffemodel"))
    for layer, blobs in final.params.items():
        for i, b in enumerate(blobs):
            assert rel_err(b.detach().numpy(), golden[f"w_{layer}_{i}"]) < 1e-4, (layer, i)


# ----------------------------------------------------------------------------- -help


def _caffe_entry_flags():
    """Our table's flags that Caffe has, with the first (Caffe's) default of each."""
    seen = {}
    for _, f in _t_caffe.FLAGS:
        seen.setdefault(f.name, f)
    return seen


def test_flag_descriptions_and_layout_are_caffes():
    """Each caffe.cpp flag in our table, laid out by tools/flags.py, is byte for byte Caffe's -helpshort entry."""
    gold = open(os.path.join(CLI_GOLDEN, "caffe_helpshort.txt")).read()
    head, section = gold.split("  Flags from tools/caffe.cpp:\n")
    names = re.findall(r"^    -(\w+) ", section, re.M)
    ours = _caffe_entry_flags()
    assert "\n".join(ours[n].describe() for n in names) + "\n" == section
    for verb, (desc, _) in _t_caffe.VERBS.items():
        assert f"  {verb:<16}{desc}\n" in head


@pytest.mark.parametrize("spelling", ["-help", "-h", "--help"])
def test_tools_train_help_lists_its_flags(spelling):
    r = tool("train", spelling)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    out = r.stdout
    assert out.startswith("train: train or finetune a model") and "usage: train -solver=solver.prototxt" in out
    assert '    -solver (The solver definition protocol buffer text file.) type: string\n      default: ""' in out
    for f in _t_caffe.verb_flags("train").values():
        assert f.describe() in out, f.name
    for name in ("solver", "weights", "snapshot", "iterations", "gpu", "stage", "level", "sigint_effect", "debug"):
        assert f"\n    -{name} (" in out, name
    assert "type: int32 default: -1" in out and "\n    -model (" not in out   # train's own -iterations; no -model


def test_recaffe_train_help_and_verb_list():
    recaffe = os.path.join(BIN, "recaffe")
    assert os.path.exists(recaffe), "console script not installed: pip install -c constraints.txt -e ."
    r = subprocess.run([recaffe, "train", "--help"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0
    flags_part = r.stdout.split("  Flags:\n")[1]
    assert flags_part == tool("train", "-help").stdout.split("  Flags:\n")[1]
    r = subprocess.run([recaffe, "--help"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0 and "usage: recaffe <command> <args>" in r.stdout
    for verb in ("train", "test", "time", "device_query"):
        assert f"\n  {verb} " in r.stdout
    test_help = tool("caffe", "test", "-help").stdout
    assert "\n    -model (" in test_help and "type: int32 default: 50" in test_help
    assert "\n    -solver (" not in test_help


# ----------------------------------------------------------------------------- caffe test vs Caffe


def test_caffe_test_log_is_caffes(tmp_path):
    """`caffe test` on the tiny net (loss + accuracy outputs, 4 batches): the same caffe.cpp lines in the same
    order as real Caffe (tests/golden/cli/caffe_test.log), the same numbers (accuracies exactly)."""
    src = tmp_path / "source.txt"
    src.write_text(os.path.join(GOLDEN, "data.h5") + "\n")
    net = tmp_path / "test_net.prototxt"
    net.write_text(open(os.path.join(CLI_GOLDEN, "test_net.prototxt")).read().replace("@SOURCE@", str(src)))
    with one_thread(), capture() as lines, pytest.raises(SystemExit) as e:
        _t_test.main([f"-model={net}", f"-weights={os.path.join(GOLDEN, 'init.caffemodel')}", "-iterations=4"])
    assert e.value.code in (0, None)
    ours = [GLOG.match(l).group(1) for l in lines if "caffe.cpp" in l and "Use CPU" not in l]
    caffe = [GLOG.match(l).group(1) for l in open(os.path.join(CLI_GOLDEN, "caffe_test.log")) if "Use CPU" not in l]
    assert [NUM.sub("N", m) for m in ours] == [NUM.sub("N", m) for m in caffe]
    for x, y in zip(ours, caffe):
        if "accuracy" in x or "Running" in x:
            assert x == y
        else:
            np.testing.assert_allclose([float(v) for v in NUM.findall(x)], [float(v) for v in NUM.findall(y)],
                                       rtol=1e-5, err_msg=f"{x!r} vs Caffe {y!r}")


# ----------------------------------------------------------------------------- the error boundary


def test_bad_solver_is_one_line_exit_2(tmp_path):
    r = tool("train", f"-solver={tmp_path}/missing.prototxt")
    msgs, other = messages(r.stderr)
    assert r.returncode == 2 and msgs == [] and "Traceback" not in r.stderr
    assert other == [f"train: error: {tmp_path}/missing.prototxt: solver file not found"]
    r = tool("caffe", "train", "-solver")                       # usage errors too
    assert r.returncode == 2 and r.stderr.strip().startswith("caffe: error: flag -solver is missing its value")
    assert len(r.stderr.strip().splitlines()) == 1


def _inject(exc, *args, env=None):
    """Run tools/train with Solver.solve replaced by a function raising ``exc`` (an unforeseen failure deep inside)."""
    code = ("import runpy, sys\nimport recaffe.solver.solver as s\n"
            f"def boom(self, *a, **k):\n    raise {exc}\n"
            "s.Solver.solve = boom\n"
            f"sys.argv = ['tools/train'] + {list(args)!r}\n"
            "runpy.run_path('tools/train', run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env or _env(), capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def solver_file(tmp_path):
    return write_case(tmp_path, "sgd", f'snapshot_prefix: "{tmp_path}/s"')


def test_unforeseen_error_is_one_line_and_a_hint(solver_file):
    r = _inject("ZeroDivisionError('injected fault')", f"-solver={solver_file}")
    msgs, other = messages(r.stderr)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert other == ["train: error: ZeroDivisionError: injected fault", f"train: {HINT}"]
    assert "Starting Optimization" in msgs           # it failed after the log began: the log stays


@pytest.mark.parametrize("how", ["--debug", "-debug", "RECAFFE_DEBUG=1"])
def test_debug_shows_the_traceback(solver_file, how):
    flags = [f"-solver={solver_file}"] + ([how] if how.startswith("-") else [])
    env = _env(RECAFFE_DEBUG="1") if how.startswith("RECAFFE") else None
    r = _inject("ZeroDivisionError('injected fault')", *flags, env=env)
    _, other = messages(r.stderr)
    assert r.returncode == 1 and other[0] == "Traceback (most recent call last):"
    assert "in boom" in r.stderr and other[-1] == "train: error: ZeroDivisionError: injected fault"
    assert HINT not in r.stderr


def test_keyboard_interrupt_exits_130(solver_file):
    r = _inject("KeyboardInterrupt", f"-solver={solver_file}")
    _, other = messages(r.stderr)
    assert r.returncode == 130 and other == ["train: interrupted"]


def test_console_script_goes_through_the_boundary(tmp_path):
    r = subprocess.run([os.path.join(BIN, "recaffe-train"), f"-solver={tmp_path}/nope.prototxt"], capture_output=True,
                       text=True, env=_env(), timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"recaffe-train: error: {tmp_path}/nope.prototxt: solver file not found"]


def test_flags_not_used_by_the_verb_are_ignored_with_a_warning(tmp_path):
    """Caffe's flags are global (gflags): `caffe time -weights=x` runs; we say that -weights is ignored."""
    write_case(tmp_path, "sgd")
    with one_thread(), capture() as lines, pytest.raises(SystemExit) as e:
        _t_caffe.main(["time", f"-model={tmp_path}/net.prototxt", "-iterations=1", "-weights=unused.caffemodel"])
    assert e.value.code in (0, None)
    assert any(l.startswith("W") and "-weights is not used by 'time'; ignored" in l for l in lines)
