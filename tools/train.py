"""``caffe train`` as its own tool: ``python -m recaffe.tools.train [flags]`` (flags as tools/caffe.py; solver/cli.py)."""
from recaffe.solver.cli import main as _main, run


def main(argv=None):
    return run(lambda: _main(argv, verb="train"))


if __name__ == "__main__":
    main()
