"""``caffe time`` as its own tool (benchmark model execution time): ``tools/time [flags]``, ``recaffe-time``,
``python -m recaffe.tools.time``; ``tools/time -help`` lists the flags (tools/caffe.py; the verb: tools/verbs.py).
Run it through tools/time or as a module: ``python tools/time.py`` puts tools/ first on sys.path, where this file
shadows the standard library's ``time`` (on Pythons that do not build ``time`` in) and caffe.py shadows ``caffe``.
"""
from recaffe.tools import caffe as _caffe


def main(argv=None):
    """Entry point through the error boundary (tools/_cli.py): exits with the verb's status."""
    return _caffe.main(argv, verb="time")


cli = main


if __name__ == "__main__":
    main()
