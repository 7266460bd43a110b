"""Run the shared DSL scripts (tests/dsl_scripts/*.py) inside real pycaffe and store what it prints.

    cd /work/main && ../shared/oracle/caffe-run python3 tests/oracle/make_dsl_goldens.py

Re-runnable: it first removes the old tests/golden/dsl/*.prototxt and errors.json, then writes
  tests/golden/dsl/<script>.<name>.prototxt   str(message) for each entry of build(L, P, NetSpec, to_proto, pb2)
  tests/golden/dsl/bvlc.<stem>.prototxt       str(parsed) of each BVLC file copied into tests/dsl_scripts/bvlc/
                                             (SolverParameter when the name has "solver", else NetParameter)
  tests/golden/dsl/errors.json               {"<script>.<case>": {"raises": exception class name or null,
                                               "message": str(exception), "text": str(message) when it worked}}
"""
import glob
import importlib.util
import json
import os
import sys

import caffe
import google.protobuf
from caffe import layers as L, params as P, NetSpec, to_proto
from caffe.proto import caffe_pb2
from google.protobuf import text_format

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "tests", "dsl_scripts")
OUT = os.path.join(ROOT, "tests", "golden", "dsl")


def load(path):
    spec = importlib.util.spec_from_file_location("dsl_" + os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in glob.glob(os.path.join(OUT, "*.prototxt")) + glob.glob(os.path.join(OUT, "errors.json")):
        os.remove(old)
    errors = {}
    for path in sorted(glob.glob(os.path.join(SCRIPTS, "*.py"))):
        stem = os.path.basename(path)[:-3]
        mod = load(path)
        if hasattr(mod, "build"):
            for name, msg in mod.build(L, P, NetSpec, to_proto, caffe_pb2).items():
                with open(os.path.join(OUT, "%s.%s.prototxt" % (stem, name)), "w") as f:
                    f.write(str(msg))
        if hasattr(mod, "cases"):
            for name, run in mod.cases(L, P, NetSpec, to_proto, caffe_pb2).items():
                try:
                    msg = run()
                except Exception as e:    # record what pycaffe raised
                    errors["%s.%s" % (stem, name)] = {"raises": type(e).__name__, "message": str(e)}
                else:
                    errors["%s.%s" % (stem, name)] = {"raises": None, "text": str(msg)}
    for path in sorted(glob.glob(os.path.join(SCRIPTS, "bvlc", "*.prototxt"))):
        stem = os.path.basename(path)[:-len(".prototxt")]
        msg = caffe_pb2.SolverParameter() if "solver" in stem else caffe_pb2.NetParameter()
        with open(path) as f:
            text_format.Merge(f.read(), msg)
        with open(os.path.join(OUT, "bvlc.%s.prototxt" % stem), "w") as f:
            f.write(str(msg))
    with open(os.path.join(OUT, "errors.json"), "w") as f:
        json.dump(errors, f, indent=1, sort_keys=True)
    print("wrote %d files to %s (caffe %s, protobuf %s)" % (
        len(os.listdir(OUT)), OUT, getattr(caffe, "__version__", "?"), google.protobuf.__version__))


if __name__ == "__main__":
    sys.exit(main())
