"""``caffe train`` as its own tool (train or finetune a model): ``tools/train [flags]``, ``recaffe-train``,
``python -m recaffe.tools.train``; ``tools/train -help`` lists the flags (tools/caffe.py; the verb: tools/verbs.py).
"""
from recaffe.tools import caffe as _caffe


def main(argv=None):
    """Entry point through the error boundary (tools/_cli.py): exits with the verb's status."""
    return _caffe.main(argv, verb="train")


cli = main


if __name__ == "__main__":
    main()
