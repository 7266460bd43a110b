"""Oracle for the LevelDB backend: runs inside real Caffe (Python 3.9 + pycaffe + the Caffe tools).

    /work/shared/oracle/caffe-run python3 tests/oracle/make_leveldb_goldens.py            # (re)make goldens
    /work/shared/oracle/caffe-run python3 tests/oracle/make_leveldb_goldens.py --check-ours DIR

Default mode: from the images of tests/golden/data/images (made by make_data_goldens.py), the real
convert_imageset --backend leveldb writes tests/golden/data/leveldb_raw (raw datums) and leveldb_enc
(--encoded); leveldb_layers.npz holds the tops of real Caffe Data layers reading them with backend
LEVELDB (TEST phase) for 4 batches of 3 (the stream wraps past the 8 records), with <case>_layer
the layer text. Caffe's LOG / LOG.old / LOCK files are left out (run-specific; any reader makes them).

--check-ours DIR: DIR holds leveldb/ and leveldb_enc/ written by OUR convert_imageset --backend
leveldb from the same images; Caffe's Data layer reads them (backend LEVELDB) and the script writes
what Caffe saw to DIR/caffe_read_leveldb.npz (tests/test_data_leveldb.py compares).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.normpath(os.path.join(HERE, "..", "golden", "data"))
N_BATCHES = 4


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def data_layer(source, batch, transform):
    return ('name: "data" type: "Data" top: "data" top: "label"\n'
            'data_param { source: "%s" batch_size: %d backend: LEVELDB }\n'
            'transform_param { %s }' % (source, batch, transform))


def forward_layer(layer_text, n_batches=N_BATCHES):
    import caffe
    caffe.set_mode_cpu()
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write("layer {\n%s\n}\n" % layer_text)
    try:
        net = caffe.Net(f.name, caffe.TEST)
        out = []
        for _ in range(n_batches):
            net.forward()
            out.append((net.blobs["data"].data.copy(), net.blobs["label"].data.copy()))
        del net   # closes the database (LevelDB allows one open handle)
    finally:
        os.unlink(f.name)
    return out


def cases(raw, enc):
    return {
        "raw": data_layer(raw, 3, "crop_size: 15 mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.5"),
        "raw_plain": data_layer(raw, 3, ""),
        "enc": data_layer(enc, 3, "force_color: true crop_size: 11"),
    }


def make_goldens():
    img_dir = os.path.join(GOLDEN, "images")
    lst = os.path.join(img_dir, "list.txt")
    for name, flags in [("leveldb_raw", []), ("leveldb_enc", ["--encoded"])]:
        db = os.path.join(GOLDEN, name)
        shutil.rmtree(db, ignore_errors=True)
        run("convert_imageset", "--backend=leveldb", *flags, img_dir + "/", lst, db)
    rel = os.path.relpath(GOLDEN, os.getcwd())
    out = {}
    for cid, text in cases(rel + "/leveldb_raw", rel + "/leveldb_enc").items():
        out[cid + "_layer"] = np.array(text)
        for k, (d, l) in enumerate(forward_layer(text)):
            out["%s_data_%d" % (cid, k)] = d.astype(np.float32)
            out["%s_label_%d" % (cid, k)] = l.astype(np.float32)
    np.savez_compressed(os.path.join(GOLDEN, "leveldb_layers.npz"), **out)
    for name in ("leveldb_raw", "leveldb_enc"):
        for f in os.listdir(os.path.join(GOLDEN, name)):
            if f in ("LOCK",) or f.startswith("LOG"):
                os.unlink(os.path.join(GOLDEN, name, f))


def check_ours(folder):
    """Let real Caffe's Data layer read the LevelDBs our convert_imageset wrote."""
    out = {}
    for cid, text in cases(os.path.join(folder, "leveldb"), os.path.join(folder, "leveldb_enc")).items():
        for k, (d, l) in enumerate(forward_layer(text)):
            out["%s_data_%d" % (cid, k)] = d.astype(np.float32)
            out["%s_label_%d" % (cid, k)] = l.astype(np.float32)
    np.savez(os.path.join(folder, "caffe_read_leveldb.npz"), **out)
    print("wrote", os.path.join(folder, "caffe_read_leveldb.npz"), sorted(out))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check-ours":
        check_ours(sys.argv[2])
    else:
        make_goldens()
