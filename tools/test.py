"""``caffe test`` as its own tool: ``python -m recaffe.tools.test [flags]`` (flags as tools/caffe.py; solver/cli.py)."""
from recaffe.solver.cli import main as _main, run


def main(argv=None):
    return run(lambda: _main(argv, verb="test"))


if __name__ == "__main__":
    main()
