"""Command-line goldens from real Caffe 1.0's `caffe` binary, for tests/test_tools_cli.py.

Re-run from the repository root:  /work/shared/oracle/caffe-run python3 tests/oracle/make_cli_goldens.py

Writes tests/golden/cli/:
  caffe_helpshort.txt  `caffe -helpshort`: the usage text and the "Flags from .../tools/caffe.cpp" section,
                       gflags' own layout of every caffe.cpp flag (the build folder cut to "tools/caffe.cpp")
  caffe_test.log       `caffe test` (4 iterations, init.caffemodel) on the tiny solver net of
                       make_solver_goldens.py plus an Accuracy output: its caffe.cpp glog lines (Batch i, Loss,
                       the mean of each output with its loss weight); the data path replaced by TMP
  test_net.prototxt    that net, with '@SOURCE@' for the HDF5 source list
"""
import os
import re
import shutil
import subprocess

from make_solver_goldens import net_text   # noqa: E402  (same folder)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "cli")
SOLVER_GOLDEN = os.path.join(HERE, "..", "golden", "solver")
ACCURACY = 'layer { name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy" }\n'


def helpshort():
    r = subprocess.run(["caffe", "-helpshort"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    text = re.sub(r"Flags from \S*/tools/caffe\.cpp:", "Flags from tools/caffe.cpp:", r.stdout)
    with open(os.path.join(OUT, "caffe_helpshort.txt"), "w") as f:
        f.write(text)


def caffe_test(tmp):
    source = os.path.join(tmp, "source.txt")
    with open(source, "w") as f:
        f.write(os.path.abspath(os.path.join(SOLVER_GOLDEN, "data.h5")) + "\n")
    with open(os.path.join(OUT, "test_net.prototxt"), "w") as f:
        f.write(net_text("@SOURCE@", {}) + ACCURACY)
    net = os.path.join(tmp, "test_net.prototxt")
    with open(net, "w") as f:
        f.write(net_text(source, {}) + ACCURACY)
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    r = subprocess.run(["caffe", "test", "-model", net, "-weights", os.path.join(SOLVER_GOLDEN, "init.caffemodel"),
                        "-iterations", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       universal_newlines=True, check=True)
    keep = [l.replace(tmp, "TMP") for l in r.stderr.splitlines() if " caffe.cpp:" in l]
    with open(os.path.join(OUT, "caffe_test.log"), "w") as f:
        f.write("\n".join(keep) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = "/tmp/recaffe_cli_goldens"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    helpshort()
    caffe_test(tmp)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
