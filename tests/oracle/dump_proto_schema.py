"""Run inside real Caffe: dump its caffe.proto schema (every message, field and enum) as JSON.

    ../shared/oracle/caffe-run python3 tests/oracle/dump_proto_schema.py

Writes tests/golden/proto/caffe_schema.json, which tests/test_proto_schema.py compares with ours.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from schema_dump import dump_file  # noqa: E402

from caffe.proto import caffe_pb2  # noqa: E402

out = os.path.join(os.path.dirname(__file__), "..", "golden", "proto", "caffe_schema.json")
with open(out, "w") as f:
    json.dump(dump_file(caffe_pb2.DESCRIPTOR), f, indent=1, sort_keys=True)
print("wrote", out)
