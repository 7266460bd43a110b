"""HDF5 weights and solver-state goldens (tests/test_weights_h5.py). Re-run from /work/main with

    python tests/oracle/make_h5_goldens.py        # in OUR environment; it then drives the oracle

Step 1 (ours, host): writes into /tmp/recaffe_h5/ with recaffe's writers
  ours_small.caffemodel.h5       tests/golden/weights/small.prototxt, blobs from RandomState(5) (one draw
                                 per blob of every layer in net order, as make_weights_goldens.py)
  ours_permissive.caffemodel.h5  tests/golden/share/permissive.prototxt (PERMISSIVE sharers), owner blobs
                                 from RandomState(11) in net order
  ours_<case>_iter_48.caffemodel.h5 + .solverstate.h5   our Solver (snapshot_format: HDF5) on the case
                                 <case> of tests/golden/solver (make_solver_goldens.py), 48 iterations from
                                 Caffe's init.caffemodel, snapshot written from /tmp/recaffe_h5 (bare names)
Step 2 (inside real Caffe: caffe-run python3 tests/oracle/make_h5_goldens.py) writes tests/golden/h5/:
  caffe_permissive.caffemodel.h5  Caffe's net.save_hdf5 of permissive.prototxt whose owner blobs hold
                                 tests/golden/share/permissive.npz's p_* values (sharers' datasets omitted)
  snap_<case>_iter_48.caffemodel.h5 + .solverstate.h5   Caffe's solver, snapshot_format: HDF5, 48
                                 iterations from init.caffemodel (learned_net is a bare name)
  caffe.npz   small.<layer>.<i> / perm.<layer>.<i>: what Caffe's net.copy_from read from our two model
              files (sharers as Caffe sees them); listing_<file>: "path shape dtype" lines of our files and
              of Caffe's (listing_caffe_state, listing_caffe_diff: a snapshot_diff model of the permissive
              net after one solver step); <case>_full: Caffe's losses of iterations 48..59 uninterrupted;
              <case>_resumed: a fresh Caffe solver restored from its own HDF5 snapshot, iterations 48..59;
              <case>_ours_iter, <case>_ours_w_<layer>_<i>, <case>_ours_resumed: Caffe restored OUR snapshot:
              its iter, the weights it loaded, its losses of iterations 48..59
  errors.json Caffe's fatal lines for HDF5 models with a wrong dataset shape, a missing and an extra
              dataset, a layer name with '/' (ToHDF5), and a state with the wrong history count
"""
import json
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import locations  # noqa: E402  (tests/locations.py: corpus and oracle paths)

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "golden", "h5")
SMALL = os.path.join(ROOT, "tests", "golden", "weights", "small.prototxt")
PERM = os.path.join(ROOT, "tests", "golden", "share", "permissive.prototxt")
SOLVER_GOLDEN = os.path.join(ROOT, "tests", "golden", "solver")
TMP = "/tmp/recaffe_h5"
CASES = ("multistep", "adam")
SNAP_AT, RESUME_TO = 48, 60
H5_EXTRA = " snapshot_format: HDF5"


def listing(path):
    """Sorted 'path shape dtype' lines of an HDF5 file (strings: their fixed size)."""
    import h5py
    lines = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            lines.append("%s %s %s" % (name, tuple(obj.shape), obj.dtype.str.lstrip("<>|=")))
        else:
            lines.append("%s group" % name)
    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return np.array(sorted(lines))


# -- step 1: ours -------------------------------------------------------------------------------------
def ours():
    import torch
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from recaffe.netspec import Net
    from recaffe.solver.solver import Solver
    from test_solver_helpers import write_case
    torch.set_num_threads(1)   # as the tests run the tiny solver net
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    net = Net(SMALL, phase="TEST")
    rng = np.random.RandomState(5)
    with torch.no_grad():
        for blobs in net.params.values():
            for p in blobs:
                p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
    net.save_weights(os.path.join(TMP, "ours_small.caffemodel.h5"))
    net = Net(PERM, phase="TRAIN")
    rng = np.random.RandomState(11)
    with torch.no_grad():
        for li, bi in [(e.layer_index, e.blob_index) for e in net._learnable]:
            p = net.layers[li].blobs[bi]
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
    net.save_weights(os.path.join(TMP, "ours_permissive.caffemodel.h5"))
    cwd = os.getcwd()
    for case in CASES:
        folder = os.path.join(TMP, "case_" + case)   # (not the prefix: a folder prefix means folder/<stem>)
        os.makedirs(folder)
        s = Solver(write_case(folder, case, 'snapshot_prefix: "ours_%s"%s' % (case, H5_EXTRA)))
        s.load_weights(os.path.join(SOLVER_GOLDEN, "init.caffemodel"))
        s.step(SNAP_AT)
        os.chdir(TMP)
        try:
            s.snapshot()
        finally:
            os.chdir(cwd)
    subprocess.check_call([locations.CAFFE_RUN, "python3", os.path.abspath(__file__)], cwd=ROOT)


# -- step 2: inside Caffe -----------------------------------------------------------------------------
def fatal(code):
    """Run ``code`` in a fresh pycaffe process that must die; return glog's fatal line (no time/thread)."""
    r = subprocess.run([sys.executable, "-c", "import caffe, h5py, numpy as np\n" + code],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert r.returncode != 0, code
    for line in r.stderr.splitlines():
        if line.startswith("F") and "] " in line:
            return line.split("] ", 1)[1]
    return r.stderr.strip().splitlines()[-1]


def errors():
    one = os.path.join(TMP, "one.prototxt")
    with open(one, "w") as f:
        f.write('name: "one" layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 6 } } }\n'
                'layer { name: "a/b" type: "InnerProduct" bottom: "data" top: "x" inner_product_param { num_output: 3 } }\n'
                'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }\n')
    model = ("p = %r\nwith h5py.File(p, 'w') as f:\n    {0}\n"
             "caffe.Net(%r, caffe.TEST).copy_from(p)\n")
    cases = {
        "shape": "f['data/ip/0'] = np.zeros((1, 1, 3, 6), np.float32); f['data/ip/1'] = np.zeros(3, np.float32)",
        "missing": "f['data/ip/0'] = np.zeros((3, 6), np.float32)",
        "extra": "f['data/ip/0'] = np.zeros((3, 6), np.float32); f['data/ip/1'] = np.zeros(3, np.float32); "
                 "f['data/ip/2'] = np.zeros(3, np.float32)",
    }
    out = {}
    for k, body in cases.items():
        path = os.path.join(TMP, "err_%s.caffemodel.h5" % k)
        out["load_" + k] = fatal(model.replace("{0}", body) % (path, one))
    out["save_slash"] = fatal("caffe.Net(%r, caffe.TEST).save_hdf5(%r)" % (one, os.path.join(TMP, "slash.h5")))
    out["state_count"] = fatal("import os\nos.chdir(%r)\ncaffe.get_solver('adam_solver.prototxt')"
                               ".restore('snap_multistep_iter_%d.solverstate.h5')" % (TMP, SNAP_AT))
    return out


def caffe_side():
    import caffe
    sys.path.insert(0, HERE)
    from make_solver_goldens import CASES as SOLVER_CASES, write_solver
    caffe.set_mode_cpu()
    os.makedirs(OUT, exist_ok=True)
    g = {}

    # (a) Caffe writes the permissive net
    net = caffe.Net(PERM, caffe.TRAIN)
    with np.load(os.path.join(ROOT, "tests", "golden", "share", "permissive.npz")) as z:
        for key in ("ipA.0", "ipA.1", "ipB.1", "conv.0", "conv.1", "ipC.1"):
            layer, i = key.split(".")
            net.params[layer][int(i)].data[...] = z["p_%s_%s" % (layer, i)]
    net.save_hdf5(os.path.join(OUT, "caffe_permissive.caffemodel.h5"))

    # (b) Caffe reads our model files
    for tag, proto, phase in (("small", SMALL, caffe.TEST), ("perm", PERM, caffe.TRAIN)):
        path = os.path.join(TMP, "ours_%s.caffemodel.h5" % ("small" if tag == "small" else "permissive"))
        net = caffe.Net(proto, phase)
        net.copy_from(path)
        for layer, blobs in net.params.items():
            for i, b in enumerate(blobs):
                g["%s.%s.%d" % (tag, layer, i)] = b.data.copy()
        g["listing_ours_" + tag] = listing(path)

    # (c) Caffe's HDF5 snapshots and runs; (d) Caffe restores ours
    source = os.path.join(TMP, "source.txt")
    with open(source, "w") as f:
        f.write(os.path.join(SOLVER_GOLDEN, "data.h5") + "\n")

    def solver_for(case, prefix):
        extra, params = SOLVER_CASES[case]
        return caffe.get_solver(write_solver(TMP, case, source, params,
                                             '%s%s\nsnapshot_prefix: "%s"\n' % (extra, H5_EXTRA, prefix)))

    def run_to(solver, n):
        losses = []
        while solver.iter < n:
            solver.step(1)
            losses.append(float(solver.net.blobs["loss"].data))
        return np.array(losses)

    cwd = os.getcwd()
    for case in CASES:
        s = solver_for(case, "snap_" + case)
        s.net.copy_from(os.path.join(SOLVER_GOLDEN, "init.caffemodel"))
        run_to(s, SNAP_AT)
        os.chdir(TMP)
        s.snapshot()
        os.chdir(cwd)
        for ext in (".caffemodel.h5", ".solverstate.h5"):
            shutil.copy(os.path.join(TMP, "snap_%s_iter_%d%s" % (case, SNAP_AT, ext)), OUT)
        g[case + "_full"] = run_to(s, RESUME_TO)
        g["listing_caffe_state_" + case] = listing(os.path.join(TMP, "snap_%s_iter_%d.solverstate.h5" % (case, SNAP_AT)))
        for tag, state in (("resumed", "snap_%s_iter_%d.solverstate.h5"), ("ours", "ours_%s_iter_%d.solverstate.h5")):
            r = solver_for(case, "unused")
            os.chdir(TMP)
            r.restore(state % (case, SNAP_AT))
            os.chdir(cwd)
            if tag == "ours":
                g[case + "_ours_iter"] = np.array(r.iter)
                for layer, blobs in r.net.params.items():
                    for i, b in enumerate(blobs):
                        g["%s_ours_w_%s_%d" % (case, layer, i)] = b.data.copy()
                g["listing_ours_state_" + case] = listing(os.path.join(TMP, state % (case, SNAP_AT)))
                g[case + "_ours_resumed"] = run_to(r, RESUME_TO)
            else:
                g[case + "_resumed"] = run_to(r, RESUME_TO)
        print(case, "full", g[case + "_full"][:3], "resumed", g[case + "_resumed"][:3],
              "caffe on ours", g[case + "_ours_resumed"][:3])

    # (e) a snapshot_diff model of the permissive net (layout of /diff with sharers)
    path = os.path.join(TMP, "diff_solver.prototxt")
    with open(path, "w") as f:
        f.write('net: "%s" base_lr: 0.01 lr_policy: "fixed" max_iter: 1 snapshot_format: HDF5 snapshot_diff: true '
                'snapshot_prefix: "%s/diff"\n' % (PERM, TMP))
    s = caffe.get_solver(path)
    s.step(1)
    s.snapshot()
    g["listing_caffe_diff"] = listing(os.path.join(TMP, "diff_iter_1.caffemodel.h5"))

    np.savez(os.path.join(OUT, "caffe.npz"), **g)
    with open(os.path.join(OUT, "errors.json"), "w") as f:
        json.dump(errors(), f, indent=1, sort_keys=True)
    print("wrote", OUT)


if __name__ == "__main__":
    try:
        import caffe  # noqa: F401
    except ImportError:
        ours()
    else:
        caffe_side()
