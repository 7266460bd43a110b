"""Every file of /work/shared/corpus (MANIFEST.tsv) is read by protos.io as real Caffe 1.0 reads it.

Golden: tests/golden/upgrade/corpus.tsv (tests/oracle/make_upgrade_goldens.py): per file, how Caffe 1.0
read it and the sha256 of its message after UpgradeNetAsNeeded / UpgradeSolverAsNeeded, serialized
deterministically (proto2 binary: same bytes from any protobuf implementation for the same message).
  latest    Caffe parses it and needs no upgrade: read strictly, equal message.
  upgraded  legacy (V1 layers, input_dim, BatchNorm params, solver_type, inline V1 nets in a solver):
            read strictly, equal to Caffe's upgrade.
  stripped  a fork file Caffe 1.0 refuses (fields of SSD / R-FCN / PSPNet / SegNet / ShuffleNet /
            SphereFace / Faster R-CNN forks), compared with Caffe's upgrade of the file with its
            unknown fields removed:
            - FORK_READ files hold only fields of the forks in protos/forkschema: they read strictly,
              keep the fork fields, and equal Caffe's message once those are taken out;
            - the others also hold fields of forks recaffe does not run: strict reading is a one-line
              ProtoError at the first such field; lenient=True warns, drops those fields (keeping
              the fork fields it knows) and equals Caffe's message likewise.
Every file also survives a text round trip through our printer (parse -> print -> parse gives an
equal message, fork fields included).
"""
import hashlib
import os
import re
import warnings

import pytest
from google.protobuf import text_format
from google.protobuf.unknown_fields import UnknownFieldSet

from recaffe.protos import io, printer
from recaffe.protos.errors import ProtoError
from recaffe.protos.forks import ProtoWarning

from locations import CORPUS, corpus_skip_reason
GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "upgrade")
ROWS = [ln.split("\t") for ln in open(os.path.join(GOLDEN, "corpus.tsv")).read().splitlines()[1:]]
#: fork files whose every non-BVLC field belongs to a fork schema (SSD, Faster R-CNN, ShuffleNet)
FORK_READ = {
    "chuanqi305__MobileNet-SSD/deploy.prototxt", "chuanqi305__MobileNet-SSD/train.prototxt",
    "xzgz__caffe-ssd/models__VGGNet__VOC0712__SSD_300x300__deploy.prototxt",
    "xzgz__caffe-ssd/models__VGGNet__VOC0712__SSD_300x300__train.prototxt",
    "rbgirshick__py-faster-rcnn/models__pascal_voc__VGG16__faster_rcnn_end2end__train.prototxt",
    "farmingyard__ShuffleNet/shufflenet_v2_1x_deploy.prototxt",
}

pytestmark = pytest.mark.skipif(corpus_skip_reason() is not None, reason=str(corpus_skip_reason()))


def _read(local, lenient=False):
    path = os.path.join(CORPUS, local)
    reader = io.read_solver if _is_solver(local) else io.read_net
    return reader(path, lenient=lenient)


def _is_solver(local):
    return "solver" in os.path.basename(local)


def _digest(msg):
    """Of the message Caffe 1.0 sees: fork fields (unknown to its schema) taken out."""
    bvlc = type(msg)()
    bvlc.CopyFrom(msg)
    bvlc.DiscardUnknownFields()
    return hashlib.sha256(bvlc.SerializeToString(deterministic=True)).hexdigest()


def test_fork_read_files_are_stripped_rows():
    assert FORK_READ <= {r[0] for r in ROWS if r[2] == "stripped"}


def test_golden_covers_the_whole_manifest():
    manifest = [ln.split("\t")[0] for ln in open(os.path.join(CORPUS, "MANIFEST.tsv")).read().splitlines()[1:]]
    assert sorted(r[0] for r in ROWS) == sorted(manifest)
    assert {r[2] for r in ROWS} == {"latest", "upgraded", "stripped"}


@pytest.mark.parametrize("local, kind, caffe, digest, nlayers", ROWS, ids=[r[0] for r in ROWS])
def test_corpus_file(local, kind, caffe, digest, nlayers):
    if caffe == "stripped" and local in FORK_READ:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ours = _read(local)
        assert any(len(UnknownFieldSet(lp)) for lp in ours.layer)   # the fork fields are kept
    elif caffe == "stripped":
        with pytest.raises(ProtoError) as e:
            _read(local)
        msg = str(e.value)
        assert "\n" not in msg and re.match(re.escape(os.path.join(CORPUS, local)) + r":\d+:\d+: ", msg), msg
        with pytest.warns(ProtoWarning, match=r":\d+:\d+: dropped "):
            ours = _read(local, lenient=True)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # standard and legacy files read without any warning
            ours = _read(local)
    if not _is_solver(local):
        assert len(ours.layer) == int(nlayers) and not len(ours.layers) and not len(ours.input)
    assert _digest(ours) == digest
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProtoWarning)
        again = (io.read_solver if _is_solver(local) else io.read_net)(printer.message_to_text(ours))
    assert again == ours


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(GOLDEN) if f.startswith("corpus__")))
def test_small_upgraded_files_equal_caffe_text(name):
    """Same check with Caffe's upgraded text at hand (a readable diff when it fails)."""
    row = next(r for r in ROWS if "corpus__" + r[0].replace("/", "__") == name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProtoWarning)
        ours = _read(row[0], lenient=row[2] == "stripped")
    caffe = type(ours)()
    text_format.Parse(open(os.path.join(GOLDEN, name)).read(), caffe)
    assert text_format.MessageToString(ours) == text_format.MessageToString(caffe)
