"""Regenerate protos/caffe_pb2.py from protos/caffe.proto (needs grpcio-tools; the runtime does not).

    python -m recaffe.protos.regen
"""
import os
import sys


def main():
    from grpc_tools import protoc
    here = os.path.dirname(os.path.abspath(__file__))
    rc = protoc.main(["protoc", f"-I{here}", f"--python_out={here}", os.path.join(here, "caffe.proto")])
    if rc != 0:
        sys.exit(f"protoc failed with status {rc}")
    print("wrote", os.path.join(here, "caffe_pb2.py"))


if __name__ == "__main__":
    main()
