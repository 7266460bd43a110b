"""Our caffe.proto must equal the oracle's schema field by field (golden: tests/oracle/dump_proto_schema.py)."""
import json
import os
import sys

import pytest

from recaffe.protos import caffe_pb2

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "oracle"))
from schema_dump import dump_file  # noqa: E402



def _normalise(schema):
    """protoc versions spell float defaults differently ('0.999' vs '0.999000013'): compare float32 values."""
    import numpy as np
    for fields in schema["messages"].values():
        for f in fields.values():
            if f["default"] is not None and f["type"] in (1, 2):  # TYPE_DOUBLE, TYPE_FLOAT
                dt = np.float64 if f["type"] == 1 else np.float32
                f["default"] = float(dt(float(f["default"])))
    return schema


GOLDEN = _normalise(json.load(open(os.path.join(HERE, "golden", "proto", "caffe_schema.json"))))
OURS = _normalise(dump_file(caffe_pb2.DESCRIPTOR))


def test_same_message_and_enum_names():
    assert sorted(OURS["messages"]) == sorted(GOLDEN["messages"])
    assert sorted(OURS["enums"]) == sorted(GOLDEN["enums"])
    assert len(OURS["messages"]) == 63
    assert OURS["package"] == GOLDEN["package"] == "caffe"


@pytest.mark.parametrize("message", sorted(GOLDEN["messages"]))
def test_message_fields(message):
    assert OURS["messages"][message] == GOLDEN["messages"][message]


@pytest.mark.parametrize("enum", sorted(GOLDEN["enums"]))
def test_enum_values(enum):
    assert OURS["enums"][enum] == GOLDEN["enums"][enum]


def test_newer_master_fields_present():
    # round_mode, Clip and Swish are what distinguish the 2018 master schema the oracle ships
    assert "round_mode" in caffe_pb2.PoolingParameter.DESCRIPTOR.fields_by_name
    assert caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name["clip_param"].number == 148
    assert caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name["swish_param"].number == 147
