"""Goldens for tests/test_upgrade.py and tests/test_corpus_parse.py: legacy nets/solvers as real Caffe 1.0
upgrades them (re-runnable; a minute).

    python3 tests/oracle/make_upgrade_goldens.py      # from /work/main, on the host (not inside caffe-run)

Host side: writes the synthetic legacy inputs below (V0 with padding layers, V0 data fields, V1 with
blobs_lr/weight_decay/param names/share modes and data-transform fields, input/input_dim/input_shape,
BatchNorm with 3 ParamSpecs, old solver_type enums; a net with both `layer` and `layers` is fatal in
Caffe 1.0 ("Refusing to upgrade inconsistent NetParameter"), so it is a closed-form error test instead)
to tests/golden/upgrade/<case>.input.prototxt,
copies them and every file of /work/shared/corpus (MANIFEST.tsv) to a /tmp folder, and runs the inner
side inside the oracle root (/work/shared/oracle/caffe-run). Inner side, for each file: Caffe 1.0's
`upgrade_net_proto_text IN OUT` (UpgradeNetAsNeeded, src/caffe/util/upgrade_proto.cpp), or
`upgrade_solver_proto_text` for solvers. A file Caffe 1.0 refuses to parse (fork fields) is first
stripped of its unknown fields by the oracle's own protobuf (text_format allow_unknown_field, and lines
holding an unknown enum value removed), which is what recaffe's lenient=True promises to match; nets
given inline in a solver are upgraded one by one with upgrade_net_proto_text.
Outputs (tests/golden/upgrade/):
  <case>.prototxt                    Caffe's upgraded text of each synthetic case (and of small corpus
                                     files that needed an upgrade, named corpus__<dir>__<file>)
  corpus.tsv                         per corpus file: kind, how Caffe read it (latest | upgraded |
                                     stripped), sha256 of Caffe's message serialized deterministically,
                                     number of layers
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import locations  # noqa: E402  (tests/locations.py: corpus and oracle paths)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden", "upgrade")
CORPUS = locations.CORPUS
CAFFE_RUN = locations.CAFFE_RUN
SMALL = 12000  # corpus legacy files up to this size also keep their upgraded text

CASES = {
    # V0: padding layers folded into conv/pool, flat fields moved to typed params
    "v0_padding": """name: "v0pad"
input: "data" input_dim: 1 input_dim: 3 input_dim: 32 input_dim: 32
force_backward: true
layers { layer { name: "conv1" type: "conv" num_output: 8 kernelsize: 5 stride: 2 group: 1 biasterm: false
  weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0.1 }
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 } bottom: "data" top: "conv1" }
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "conv1" top: "pad1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 } bottom: "pad1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.0001 beta: 0.75 k: 2 } bottom: "pool1" top: "norm1" }
layers { layer { name: "pad2" type: "padding" pad: 1 } bottom: "norm1" top: "pad2" }
layers { layer { name: "conv2" type: "conv" num_output: 4 kernelsize: 3 group: 2 } bottom: "pad2" top: "conv2" }
layers { layer { name: "pool2" type: "pool" pool: STOCHASTIC kernelsize: 2 } bottom: "conv2" top: "pool2" }
layers { layer { name: "fc" type: "innerproduct" num_output: 10 weight_filler { type: "xavier" } } bottom: "pool2" top: "fc" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 } bottom: "fc" top: "fc" }
layers { layer { name: "prob" type: "softmax" } bottom: "fc" top: "prob" }
""",
    # V0: data-layer fields, transform fields on any type, concat_dim, window/hdf5 params
    "v0_data": """name: "v0data"
layers { layer { name: "data" type: "data" source: "train_lmdb" batchsize: 16 meanfile: "mean.binaryproto"
  cropsize: 27 mirror: true scale: 0.5 rand_skip: 3 } top: "data" top: "label" }
layers { layer { name: "img" type: "images" source: "list.txt" batchsize: 4 shuffle_images: true new_height: 40
  new_width: 30 rand_skip: 1 } top: "img" top: "img_label" }
layers { layer { name: "win" type: "window_data" source: "windows.txt" batchsize: 8 det_fg_threshold: 0.6
  det_bg_threshold: 0.4 det_fg_fraction: 0.3 det_context_pad: 16 det_crop_mode: "square" } top: "win" top: "win_label" }
layers { layer { name: "h5" type: "hdf5_data" source: "h5.txt" batchsize: 2 } top: "h5" }
layers { layer { name: "cat" type: "concat" concat_dim: 1 } bottom: "data" bottom: "img" top: "cat" }
layers { layer { name: "flat" type: "flatten" } bottom: "cat" top: "flat" }
layers { layer { name: "out" type: "hdf5_output" hdf5_output_param { file_name: "out.h5" } } bottom: "flat" bottom: "label" }
layers { layer { name: "ig" type: "infogain_loss" source: "H.binaryproto" } bottom: "flat" bottom: "label" top: "ig" }
layers { layer { name: "eu" type: "euclidean_loss" } bottom: "flat" bottom: "flat" top: "eu" }
layers { layer { name: "acc" type: "accuracy" } bottom: "flat" bottom: "label" top: "acc" }
layers { layer { name: "sm" type: "softmax_loss" } bottom: "flat" bottom: "label" top: "sm" }
layers { layer { name: "mlr" type: "multinomial_logistic_loss" } bottom: "flat" bottom: "label" top: "mlr" }
layers { layer { name: "b" type: "bnll" } bottom: "flat" top: "b" }
layers { layer { name: "s" type: "sigmoid" } bottom: "b" top: "s" }
layers { layer { name: "t" type: "tanh" } bottom: "s" top: "t" }
layers { layer { name: "sp" type: "split" } bottom: "t" top: "t1" top: "t2" }
layers { layer { name: "i2c" type: "im2col" kernelsize: 3 } bottom: "data" top: "cols" }
""",
    # V1: per-blob lists -> ParamSpec, data transform fields, many enum types, include/exclude
    "v1_layers": """name: "v1net"
layers { name: "data" type: DATA top: "data" top: "label"
  data_param { source: "lmdb" batch_size: 8 scale: 0.00390625 mean_file: "m.binaryproto" crop_size: 5 mirror: true }
  include { phase: TRAIN } }
layers { name: "idata" type: IMAGE_DATA top: "idata" top: "ilabel" image_data_param { source: "l.txt" batch_size: 2 }
  include { phase: TEST stage: "val" } }
layers { name: "wdata" type: WINDOW_DATA top: "wdata" top: "wlabel" window_data_param { source: "w.txt" crop_size: 7 } }
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" blobs_lr: 1 blobs_lr: 2 weight_decay: 1
  weight_decay: 0 param: "shared_w" blob_share_mode: PERMISSIVE
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layers { name: "deconv" type: DECONVOLUTION bottom: "conv" top: "deconv" blobs_lr: 0
  convolution_param { num_output: 2 kernel_size: 2 stride: 2 } exclude { phase: TEST } }
layers { name: "ip" type: INNER_PRODUCT bottom: "deconv" top: "ip" param: "a" param: "b" blob_share_mode: STRICT
  weight_decay: 0.5 inner_product_param { num_output: 3 } }
layers { name: "abs" type: ABSVAL bottom: "ip" top: "abs" }
layers { name: "am" type: ARGMAX bottom: "ip" top: "am" argmax_param { top_k: 2 } }
layers { name: "elt" type: ELTWISE bottom: "ip" bottom: "abs" top: "elt" eltwise_param { operation: MAX } }
layers { name: "exp" type: EXP bottom: "elt" top: "exp" exp_param { base: 2 } }
layers { name: "pw" type: POWER bottom: "exp" top: "pw" power_param { power: 2 scale: 0.5 } }
layers { name: "th" type: THRESHOLD bottom: "pw" top: "th" threshold_param { threshold: 0.1 } }
layers { name: "mvn" type: MVN bottom: "pw" top: "mvn" mvn_param { across_channels: true } }
layers { name: "sl" type: SLICE bottom: "mvn" top: "s1" top: "s2" slice_param { slice_point: 1 } }
layers { name: "sil" type: SILENCE bottom: "s2" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 2 } }
layers { name: "relu" type: RELU bottom: "pool" top: "pool" relu_param { negative_slope: 0.1 } }
layers { name: "lrn" type: LRN bottom: "pool" top: "lrn" lrn_param { local_size: 3 } }
layers { name: "dummy" type: DUMMY_DATA top: "dummy" dummy_data_param { shape { dim: 2 dim: 3 } } }
layers { name: "mem" type: MEMORY_DATA top: "mem" top: "memlabel" memory_data_param { batch_size: 1 channels: 1 height: 2 width: 2 } }
layers { name: "h5" type: HDF5_DATA top: "h5" hdf5_data_param { source: "a.txt" batch_size: 1 } }
layers { name: "h5o" type: HDF5_OUTPUT bottom: "h5" hdf5_output_param { file_name: "o.h5" } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" top: "loss" loss_weight: 2
  loss_param { ignore_label: 1 normalize: false } softmax_param { axis: 1 } }
layers { name: "hinge" type: HINGE_LOSS bottom: "ip" bottom: "label" top: "hinge" hinge_loss_param { norm: L2 } }
layers { name: "closs" type: CONTRASTIVE_LOSS bottom: "ip" bottom: "ip" bottom: "label" top: "closs"
  contrastive_loss_param { margin: 2 } }
layers { name: "sce" type: SIGMOID_CROSS_ENTROPY_LOSS bottom: "ip" bottom: "label" top: "sce" }
layers { name: "acc" type: ACCURACY bottom: "ip" bottom: "label" top: "acc" accuracy_param { top_k: 2 } }
layers { name: "cat" type: CONCAT bottom: "ip" bottom: "abs" top: "cat" concat_param { axis: 1 } }
layers { name: "fl" type: FLATTEN bottom: "cat" top: "fl" }
layers { name: "sig" type: SIGMOID bottom: "fl" top: "sig" }
layers { name: "tanh" type: TANH bottom: "sig" top: "tanh" }
layers { name: "bnll" type: BNLL bottom: "tanh" top: "bnll" }
layers { name: "sm" type: SOFTMAX bottom: "bnll" top: "sm" }
layers { name: "split" type: SPLIT bottom: "sm" top: "sm1" top: "sm2" }
layers { name: "drop" type: DROPOUT bottom: "sm1" top: "sm1" dropout_param { dropout_ratio: 0.2 } }
layers { name: "eu" type: EUCLIDEAN_LOSS bottom: "sm1" bottom: "sm2" top: "eu" }
layers { name: "mlr" type: MULTINOMIAL_LOGISTIC_LOSS bottom: "sm1" bottom: "label" top: "mlr" }
layers { name: "ig" type: INFOGAIN_LOSS bottom: "sm1" bottom: "label" top: "ig" infogain_loss_param { source: "H" } }
layers { name: "i2c" type: IM2COL bottom: "data" top: "i2c" convolution_param { kernel_size: 2 } }
layers { name: "none" type: NONE bottom: "data" top: "none" }
""",
    # V1 with legacy inputs: two inputs, 8 input_dim values
    "v1_input_dim": """name: "v1in"
input: "data" input_dim: 2 input_dim: 3 input_dim: 8 input_dim: 8
input: "aux" input_dim: 2 input_dim: 5 input_dim: 1 input_dim: 1
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 3 } }
layers { name: "ip" type: INNER_PRODUCT bottom: "aux" top: "ip" inner_product_param { num_output: 2 } }
""",
    "v2_input_shape": """name: "v2in"
input: "data" input_shape { dim: 1 dim: 3 dim: 5 dim: 5 }
input: "seq" input_shape { dim: 4 dim: 2 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 3 } }
""",
    "v2_input_bare": """name: "bare"
input: "data"
layer { name: "relu" type: "ReLU" bottom: "data" top: "relu" }
""",
    "v2_batchnorm": """name: "bn"
input: "data" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 3
layer { name: "bn3" type: "BatchNorm" bottom: "data" top: "bn3" param { lr_mult: 1 decay_mult: 1 }
  param { lr_mult: 1 } param { name: "shared" lr_mult: 2 } batch_norm_param { use_global_stats: false } }
layer { name: "bn1" type: "BatchNorm" bottom: "bn3" top: "bn1" param { lr_mult: 1 } }
layer { name: "bn0" type: "BatchNorm" bottom: "bn1" top: "bn0" }
layer { name: "sc" type: "Scale" bottom: "bn0" top: "sc" param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 }
  scale_param { bias_term: true } }
""",
    "solver_adam": "net: \"train.prototxt\"\nbase_lr: 0.001\nsolver_type: ADAM\nmomentum: 0.9\nmomentum2: 0.999\n",
    "solver_nesterov": "net: \"n.prototxt\"\nsolver_type: NESTEROV\nbase_lr: 0.01\n",
    "solver_adagrad": "net: \"n.prototxt\"\nsolver_type: ADAGRAD\n",
    "solver_rmsprop": "net: \"n.prototxt\"\nsolver_type: RMSPROP\nrms_decay: 0.98\n",
    "solver_adadelta": "net: \"n.prototxt\"\nsolver_type: ADADELTA\ndelta: 1e-6\n",
    "solver_sgd": "net: \"n.prototxt\"\nsolver_type: SGD\n",
}


def host():
    os.makedirs(GOLDEN, exist_ok=True)
    work = tempfile.mkdtemp(prefix="upgrade_oracle_", dir="/tmp")
    try:
        for name, text in CASES.items():
            with open(os.path.join(GOLDEN, name + ".input.prototxt"), "w") as f:
                f.write(text)
            with open(os.path.join(work, "case__" + name), "w") as f:
                f.write(text)
        rows = [ln.split("\t") for ln in open(os.path.join(CORPUS, "MANIFEST.tsv")).read().splitlines()[1:]]
        kinds = {}
        for r in rows:
            local, kind = r[0], r[4]
            flat = "corpus__" + local.replace("/", "__")
            shutil.copy(os.path.join(CORPUS, local), os.path.join(work, flat))
            kinds[flat] = (local, kind)
        with open(os.path.join(work, "kinds.tsv"), "w") as f:
            for flat, (local, kind) in kinds.items():
                f.write(f"{flat}\t{local}\t{kind}\n")
        subprocess.run([CAFFE_RUN, "python3", "tests/oracle/make_upgrade_goldens.py", "--inner", work],
                       check=True, cwd=ROOT)
        results = [ln.split("\t") for ln in open(os.path.join(work, "results.tsv")).read().splitlines()]
        with open(os.path.join(GOLDEN, "corpus.tsv"), "w") as out:
            out.write("local_file\tkind\tcaffe\tsha256\tlayers\n")
            for flat, status, digest, nlayers in results:
                src = os.path.join(work, flat + ".out")
                if flat.startswith("case__"):
                    shutil.copy(src, os.path.join(GOLDEN, flat[6:] + ".prototxt"))
                    continue
                local, kind = kinds[flat]
                out.write(f"{local}\t{kind}\t{status}\t{digest}\t{nlayers}\n")
                if status != "latest" and os.path.getsize(src) <= SMALL:
                    shutil.copy(src, os.path.join(GOLDEN, flat))
        print("wrote", GOLDEN)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _is_solver(text):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    try:
        text_format.Parse(text, caffe_pb2.SolverParameter(), allow_unknown_field=False)
        return True
    except text_format.ParseError:
        return False


def _strip(text, cls):
    """Caffe 1.0's schema's reading of a fork file: unknown fields skipped, unknown enum lines removed."""
    import re
    from google.protobuf import text_format
    lines = text.split("\n")
    while True:
        msg = cls()
        try:
            text_format.Parse("\n".join(lines), msg, allow_unknown_field=True)
            return text_format.MessageToString(msg)
        except text_format.ParseError as e:
            m = re.match(r"(\d+):\d+ : .*has no value named", str(e))
            if not m:
                raise
            lines[int(m.group(1)) - 1] = ""


def inner(work):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    out = []
    for flat in sorted(os.listdir(work)):
        if not (flat.startswith("case__") or flat.startswith("corpus__")) or flat.endswith((".out", ".in")):
            continue
        src, dst = os.path.join(work, flat), os.path.join(work, flat + ".out")
        text = open(src).read()
        solver = _is_solver(text)
        cls = caffe_pb2.SolverParameter if solver else caffe_pb2.NetParameter
        tool = "upgrade_solver_proto_text" if solver else "upgrade_net_proto_text"
        status = "upgraded"
        try:
            text_format.Parse(text, cls())
        except text_format.ParseError:
            status = "stripped"
            src = src + ".in"
            with open(src, "w") as f:
                f.write(_strip(text, cls))
        p = subprocess.run([tool, src, dst], capture_output=True, text=True)
        if "already in latest proto format" in p.stderr + p.stdout and status != "stripped":
            status = "latest"
        if not os.path.exists(dst):
            raise SystemExit(f"{tool} failed on {flat}: {p.stderr}")
        msg = text_format.Parse(open(dst).read(), cls())
        if solver:
            before = msg.SerializeToString(deterministic=True)
            for field in ("net_param", "train_net_param"):
                if msg.HasField(field):
                    getattr(msg, field).CopyFrom(_upgrade_inline(getattr(msg, field), work))
            for net in msg.test_net_param:
                net.CopyFrom(_upgrade_inline(net, work))
            if status == "latest" and msg.SerializeToString(deterministic=True) != before:
                status = "upgraded"
            with open(dst, "w") as f:
                f.write(text_format.MessageToString(msg))
        digest = hashlib.sha256(msg.SerializeToString(deterministic=True)).hexdigest()
        nlayers = 0 if solver else len(msg.layer)
        out.append(f"{flat}\t{status}\t{digest}\t{nlayers}")
        print(flat, status, p.returncode)
    with open(os.path.join(work, "results.tsv"), "w") as f:
        f.write("\n".join(out) + "\n")


def _upgrade_inline(net, work):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    src, dst = os.path.join(work, "inline.in"), os.path.join(work, "inline.out")
    with open(src, "w") as f:
        f.write(text_format.MessageToString(net))
    subprocess.run(["upgrade_net_proto_text", src, dst], check=True, capture_output=True)
    return text_format.Parse(open(dst).read(), caffe_pb2.NetParameter())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--inner":
        inner(sys.argv[2])
    else:
        host()
