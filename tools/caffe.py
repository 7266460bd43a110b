"""``caffe`` command line: ``python -m recaffe.tools.caffe train|test|time|device_query [flags]`` (installed as
``recaffe``). See solver/cli.py for the verbs and flags (Caffe's tools/caffe.cpp)."""

from recaffe.solver.cli import main as _main, run


def main(argv=None):
    return run(lambda: _main(argv))


if __name__ == "__main__":
    main()
