"""Where the corpus of real public prototxt files is (MANIFEST.tsv says where each came from): the
folder named by the environment variable RECAFFE_CORPUS, else ../shared/corpus beside the repository.
Tests that need it skip, naming the path they looked at, when it is absent (a clean clone without the
shared folder)."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.environ.get("RECAFFE_CORPUS") or os.path.normpath(os.path.join(ROOT, "..", "shared", "corpus"))

needs_corpus = pytest.mark.skipif(not os.path.isdir(CORPUS),
                                  reason=f"corpus folder {CORPUS} not present (set RECAFFE_CORPUS)")


def corpus_file(local):
    """Absolute path of a corpus file given as in MANIFEST.tsv's first column."""
    return os.path.join(CORPUS, local)
