"""``caffe time`` as its own tool: ``python -m recaffe.tools.time [flags]`` (flags as tools/caffe.py; solver/cli.py).

Run it as a module: ``python tools/time.py`` would put tools/ first on sys.path, where this file
shadows the standard library's ``time``."""
from recaffe.solver.cli import main as _main, run


def main(argv=None):
    return run(lambda: _main(argv, verb="time"))


if __name__ == "__main__":
    main()
