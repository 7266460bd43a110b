"""Regenerate the fork schema modules (<family>_pb2.py) from the .proto files beside this one (needs
grpcio-tools, the dev extra; the runtime does not).

    python protos/forkschema/regen.py      (a script: the package imports the modules it writes)
"""
import glob
import os
import sys


def main():
    from grpc_tools import protoc
    here = os.path.dirname(os.path.abspath(__file__))
    protos = os.path.dirname(here)
    for proto in sorted(glob.glob(os.path.join(here, "*.proto"))):
        rc = protoc.main(["protoc", f"-I{here}", f"-I{protos}", f"--python_out={here}", proto])
        if rc != 0:
            sys.exit(f"protoc failed on {proto} with status {rc}")
        out = proto[:-len(".proto")] + "_pb2.py"
        with open(out) as f:
            text = f.read()
        # the generated import names caffe_pb2 as a top-level module; it lives in recaffe.protos
        text = text.replace("import caffe_pb2 as caffe__pb2", "from recaffe.protos import caffe_pb2 as caffe__pb2")
        with open(out, "w") as f:
            f.write(text)
        print("wrote", out)


if __name__ == "__main__":
    main()
