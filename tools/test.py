"""``caffe test`` as its own tool (score a model): ``tools/test [flags]``, ``recaffe-test``,
``python -m recaffe.tools.test``; ``tools/test -help`` lists the flags (tools/caffe.py; the verb: tools/verbs.py).
"""
from recaffe.tools import caffe as _caffe


def main(argv=None):
    """Entry point through the error boundary (tools/_cli.py): exits with the verb's status."""
    return _caffe.main(argv, verb="test")


cli = main


if __name__ == "__main__":
    main()
