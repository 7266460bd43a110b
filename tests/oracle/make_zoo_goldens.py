"""Goldens for tests/test_models_zoo.py: the V1-format corpus nets upgraded by real Caffe (re-runnable).

    python3 tests/oracle/make_zoo_goldens.py          # from /work/main, on the host (not inside caffe-run)

Three corpus files use the V1 `layers { type: CONVOLUTION blobs_lr ... }` format (and legacy input
fields); the generators are compared with them as Caffe itself reads them. For each one, this copies it
to /tmp (the only shared folder the oracle root sees besides the checkout), runs Caffe 1.0's
`upgrade_net_proto_text IN OUT` inside the oracle root (/work/shared/oracle/caffe-run), which applies
UpgradeNetAsNeeded (src/caffe/util/upgrade_proto.cpp: V0->V1->V2 layers, input fields -> Input layer),
and writes the result to tests/golden/zoo/<name>.prototxt (a few KB each).
"""
import os
import shutil
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import locations  # noqa: E402  (tests/locations.py: corpus and oracle paths)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden", "zoo")
CORPUS = locations.CORPUS
CAFFE_RUN = locations.CAFFE_RUN

# golden name -> corpus file (all in V1 format)
V1_FILES = {
    "jimgoo_oxford102_alexnet_train_val": "jimgoo__caffe-oxford102/AlexNet__train_val.prototxt",
    "jimgoo_oxford102_alexnet_deploy": "jimgoo__caffe-oxford102/AlexNet__deploy.prototxt",
    "fish145_oxford102_vgg16_train_val": "fish145__fine-tuning/Oxford102__VGG16__train_val.prototxt",
}


def main():
    os.makedirs(GOLDEN, exist_ok=True)
    work = tempfile.mkdtemp(prefix="zoo_oracle_", dir="/tmp")
    try:
        for name, rel in V1_FILES.items():
            src = os.path.join(work, name + ".v1.prototxt")
            out = os.path.join(work, name + ".prototxt")
            shutil.copy(os.path.join(CORPUS, rel), src)
            subprocess.run([CAFFE_RUN, "upgrade_net_proto_text", src, out], check=True, cwd=ROOT)
            with open(out) as f:
                text = f.read()
            if "layers {" in text or not text.strip():
                sys.exit(f"{rel}: upgrade_net_proto_text did not produce a V2 net")
            with open(os.path.join(GOLDEN, name + ".prototxt"), "w") as f:
                f.write(f"# {rel} upgraded by Caffe 1.0 upgrade_net_proto_text (tests/oracle/make_zoo_goldens.py)\n")
                f.write(text)
            print("wrote", name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
