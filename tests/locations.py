"""Where the tests, the oracle scripts and the benchmarks find what lives outside the repository: the
corpus of published prototxt files and real Caffe (the oracle). One place, overridable by environment:

  RECAFFE_CORPUS  the corpus folder (default: ../shared/corpus beside the repository)
  CAFFE_RUN       the oracle's runner (default: ../shared/oracle/caffe-run beside the repository)

Tests that need either skip with the reason given here (``corpus_skip_reason``, ``oracle_skip_reason``);
goldens never need them. Standard library only: oracle scripts import it under real Caffe's Python 3.9.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SHARED = os.path.join(os.path.dirname(ROOT), "shared")

CORPUS = os.path.abspath(os.environ.get("RECAFFE_CORPUS") or os.path.join(_SHARED, "corpus"))
CAFFE_RUN = os.path.abspath(os.environ.get("CAFFE_RUN") or os.path.join(_SHARED, "oracle", "caffe-run"))
# setup-caffe marks a finished install with this file (the runner exists before the install does).
ORACLE_ROOT = os.environ.get("RECAFFE_ORACLE_ROOT", "/opt/caffe-oracle")


def corpus_path(*parts):
    return os.path.join(CORPUS, *parts)


def corpus_skip_reason():
    """None when the corpus is there, else why tests that read it are skipped."""
    if os.path.isdir(CORPUS):
        return None
    return f"corpus folder {CORPUS} not present (set RECAFFE_CORPUS)"


def oracle_skip_reason():
    """None when real Caffe can be run, else why tests that run it are skipped."""
    if not os.path.exists(CAFFE_RUN):
        return f"Caffe oracle runner {CAFFE_RUN} not present (set CAFFE_RUN)"
    if not os.path.exists(os.path.join(ORACLE_ROOT, ".ready")):
        return f"Caffe oracle not installed at {ORACLE_ROOT} (run ../shared/oracle/setup-caffe)"
    return None
