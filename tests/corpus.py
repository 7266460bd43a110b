"""pytest helpers over tests/locations.py (the one place for the corpus path): a skip mark for tests
that read the corpus, naming the path they looked at, and the path of a corpus file."""
import pytest

from locations import CORPUS, corpus_path, corpus_skip_reason  # noqa: F401

needs_corpus = pytest.mark.skipif(corpus_skip_reason() is not None, reason=str(corpus_skip_reason()))


def corpus_file(local):
    """Absolute path of a corpus file given as in MANIFEST.tsv's first column."""
    return corpus_path(local)
