"""Issue #14's bad inputs, one test each: every one is a clean one-line RecaffeError naming the place and
the limit (library API), exit status 2 with one line on stderr (CLIs), and no file changed.

Limits (protos.limits): blobs as Caffe's Blob::Reshape (<= 32 axes, <= INT_MAX elements), images by
the pixels their header declares (RECAFFE_MAX_IMAGE_PIXELS), prototxt text by size
(RECAFFE_MAX_PROTOTXT_BYTES), parameters + blobs against the memory there is (RECAFFE_MEMORY_LIMIT).
"""
import hashlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from fuzz import artifacts
from recaffe.protos import limits
from recaffe.protos.errors import DataError, NetError, ProtoError, RecaffeError, SolverError, WeightsError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    return artifacts.build(str(tmp_path_factory.mktemp("art")))


def tree_state(folder):
    """{relative path: sha256} of every file under ``folder`` (to show that nothing changed)."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def one_line(exc_info, *patterns):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for p in patterns:
        assert re.search(p, msg), (p, msg)
    return msg


def run_cli(capsys, module, argv, tool):
    """Run a CLI's main in-process under the CLI error convention (tools/_cli.run): exit 2, the error as
    one stderr line (after any log lines)."""
    import importlib
    from recaffe.tools._cli import run
    main = importlib.import_module(module).main
    argv0, sys.argv[0] = sys.argv[0], tool      # a main that runs its own boundary names the tool from argv[0]
    try:
        with pytest.raises(SystemExit) as e:
            run(lambda: main(argv), tool)
    finally:
        sys.argv[0] = argv0
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2, err
    lines = err.split("\n")           # log lines (Caffe's "Use CPU.", ...) may come first
    assert lines[-1].startswith(f"{tool}: error: ") and "Traceback" not in err, err
    assert not [ln for ln in lines[:-1] if "error" in ln.lower()], err
    return lines[-1]


def net_file(tmp_path, text, name="n.prototxt"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def build(path, **kw):
    from recaffe.netspec.net.net import Net
    return Net(path, **kw)


# -- errors that escaped as tracebacks ---------------------------------------------------------------
class Evil:
    """A pickle that would create a file if it were ever unpickled with code execution."""
    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def pickle_files(tmp_path, art):
    Evil.marker = str(tmp_path / "PWNED")
    w, s = str(tmp_path / "evil.pth"), str(tmp_path / "evil.solverstate.pth")
    torch.save({"conv1.0": Evil()}, w)
    torch.save({"iter": 1, "learned_net": "", "current_step": 0, "history": [Evil()]}, s)
    yield w, s
    assert not os.path.exists(Evil.marker), "a pickle ran code"


def test_pickle_pth_is_refused_everywhere(tmp_path, art, pickle_files, capsys):
    import recaffe
    weights, state = pickle_files
    before = tree_state(os.path.dirname(art["net"]))
    pattern = r"evil\.pth: cannot read \.pth weights: the file holds Python objects other than tensors"
    with pytest.raises(WeightsError) as e:
        build(art["net"], weights=weights)
    one_line(e, pattern)
    with pytest.raises(WeightsError) as e:
        recaffe.Net(art["net"], weights, recaffe.TEST)
    one_line(e, pattern)
    line = run_cli(capsys, "recaffe.tools.caffe", ["train", f"-solver={art['solver']}", f"-weights={weights}"], "caffe")
    assert re.search(pattern, line), line
    line = run_cli(capsys, "recaffe.tools.caffe", ["test", f"-model={art['net']}", f"-weights={weights}",
                                                   "-iterations=1"], "caffe")
    assert re.search(pattern, line), line
    line = run_cli(capsys, "recaffe.tools.caffe", ["train", f"-solver={art['solver']}", f"-snapshot={state}"], "caffe")
    assert "evil.solverstate.pth: cannot read .solverstate.pth: the file holds Python objects" in line, line
    line = run_cli(capsys, "recaffe.tools.classify", [art["png"], f"-model={art['net']}", f"-weights={weights}"],
                   "classify")
    assert re.search(pattern, line), line
    assert tree_state(os.path.dirname(art["net"])) == before


@pytest.mark.parametrize("content, pattern", [
    ({"conv1.0": [1.0, 2.0]}, r"entry 'conv1\.0' is a list, expected a tensor"),
    ({"conv1.0": "text"}, r"entry 'conv1\.0' is a str, expected a tensor"),
    ({3: torch.zeros(4, 3, 3, 3)}, r"has a key 3 of type int; expected string keys"),
    ({"conv1.0": torch.zeros(2, dtype=torch.complex64)}, r"complex64 tensor, expected a dense numeric tensor"),
    (b"", r"cannot read \.pth weights: the file is empty or truncated"),
    ([torch.zeros(1)], r"must hold a dict '<layer>\.<blob index>' -> tensor, got list"),
])
def test_pth_contents_are_type_checked(tmp_path, art, content, pattern):
    p = str(tmp_path / "w.pth")
    if isinstance(content, bytes):
        open(p, "wb").close()
    else:
        torch.save(content, p)
    with pytest.raises(WeightsError) as e:
        build(art["net"], weights=p)
    one_line(e, "^" + re.escape(p) + ": ", pattern)
    assert tree_state(str(tmp_path))[os.path.basename(p)]   # still there, unchanged by the read


@pytest.mark.parametrize("content, pattern", [
    ({"iter": "ten", "history": []}, r"entry 'iter' is 'ten'; expected an int32 integer"),
    ({"iter": 1}, r"has no 'history' entry"),
    ({"iter": 1, "history": [[1.0]]}, r"history blob 0 is a list, expected a tensor"),
    ({"iter": 1, "history": torch.zeros(2)}, r"entry 'history' is a Tensor; expected a list of tensors"),
    ({"iter": 1, "learned_net": 5, "history": []}, r"entry 'learned_net' is a int; expected a file name"),
])
def test_solverstate_pth_contents_are_type_checked(tmp_path, art, content, pattern):
    from recaffe.solver.state import read_solverstate
    p = str(tmp_path / "x.solverstate.pth")
    torch.save(content, p)
    with pytest.raises(SolverError) as e:
        read_solverstate(p)
    one_line(e, pattern)


def test_solverstate_pth_round_trip_still_restores(art):
    from recaffe.solver.solver import Solver
    s = Solver(art["solver"])
    s.restore(art["state.pth"])
    assert s.iter == 2 and s.optimizer.iteration == 2


def cli_time(capsys, model, pattern):
    """`caffe time -model=MODEL`: exit 2, one line matching ``pattern``, no file changed."""
    folder = os.path.dirname(model)
    before = tree_state(folder)
    line = run_cli(capsys, "recaffe.tools.caffe", ["time", f"-model={model}", "-iterations=1"], "caffe")
    assert re.search(pattern, line), (pattern, line)
    assert tree_state(folder) == before


def test_batchnorm_negative_eps(tmp_path, capsys):
    text = artifacts.SMALL_NET.replace('type: "BatchNorm" bottom: "conv1" top: "conv1" }',
                                       'type: "BatchNorm" bottom: "conv1" top: "conv1" batch_norm_param { eps: -1 } }')
    pattern = r"layer 'bn1' \(BatchNorm\): batch_norm_param\.eps must be a finite number >= 0, got -1"
    with pytest.raises(NetError) as e:
        build(net_file(tmp_path, text))
    one_line(e, pattern)
    cli_time(capsys, net_file(tmp_path, text), pattern)


def test_decompression_bomb_png(tmp_path, art, capsys, monkeypatch):
    """A 30000 x 30000 PNG header (70 bytes): refused from its header by recaffe's limit; with the limit
    off, PIL's own bomb error is a clean line too."""
    from recaffe.io import load_image
    bomb = artifacts.write(str(tmp_path / "bomb.png"), artifacts.png_header_only(30000, 30000))
    with pytest.raises(DataError) as e:
        load_image(bomb)
    one_line(e, r"bomb\.png: image of 30000 x 30000 = 900000000 pixels, over the limit of 268435456 "
                r"\(RECAFFE_MAX_IMAGE_PIXELS")
    line = run_cli(capsys, "recaffe.tools.classify", [bomb, f"-model={art['net']}", f"-weights={art['caffemodel']}"],
                   "classify")
    assert "bomb.png: image of 30000 x 30000" in line
    monkeypatch.setenv("RECAFFE_MAX_IMAGE_PIXELS", "off")
    with pytest.raises(DataError) as e:
        load_image(bomb)
    one_line(e, r"bomb\.png: cannot read image: Image size \(900000000 pixels\) exceeds limit")


def test_hdf5_dataset_of_strings(tmp_path, capsys):
    h5 = artifacts.write_hdf5_data(str(tmp_path / "s.h5"), data=np.array([b"a", b"b"] * 3, dtype="S1"))
    lst = artifacts.write(str(tmp_path / "l.txt"), h5 + "\n")
    with pytest.raises(DataError) as e:
        build(net_file(tmp_path, artifacts.hdf5_net(lst)))
    one_line(e, r"s\.h5: 'data': dataset of strings; expected numbers")
    cli_time(capsys, net_file(tmp_path, artifacts.hdf5_net(lst)), r"s\.h5: 'data': dataset of strings")


# -- sizes nobody checked --------------------------------------------------------------------------
INPUT = 'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {dims} }} }} }}\n'


def dims(*d):
    return " ".join(f"dim: {x}" for x in d)


SIZES = [
    (INPUT.format(dims=dims(1, 3, 100000, 100000)) + 'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }',
     r"layer 'data' \(Input\): top 0 \('data'\): blob shape \(1, 3, 100000, 100000\) has 30000000000 elements, "
     r"over the limit of 2147483647 \(INT_MAX"),
    (INPUT.format(dims=dims(1, 3, 8, 8)) + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
     'inner_product_param { num_output: 2000000000 } }',
     r"layer 'ip' \(InnerProduct\): parameter blob 0: blob shape \(2000000000, 192\) has 384000000000 elements"),
    ('layer { name: "d" type: "DummyData" top: "d" dummy_data_param { shape { dim: 100000 dim: 100000 dim: 100 } } }',
     r"layer 'd' \(DummyData\): top 0 \('d'\): blob shape \(100000, 100000, 100\) has 1000000000000 elements"),
    (INPUT.format(dims=dims(1, 3, 8, 8)) + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
     'convolution_param { num_output: 2 kernel_size: 3 pad: 1000000 } }',
     r"layer 'c' \(Convolution\): top 0 \('c'\): blob shape \(1, 2, 2000006, 2000006\)"),
    (INPUT.format(dims=dims(1, 3, 8, 8)) + 'layer { name: "t" type: "Tile" bottom: "data" top: "t" '
     'tile_param { axis: 1 tiles: 2000000000 } }',
     r"layer 't' \(Tile\): top 0 \('t'\): blob shape \(1, 6000000000, 8, 8\)"),
    (INPUT.format(dims=dims(1, 3, 8, 8)) + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
     'convolution_param { num_output: 2 kernel_size: 4294967295 } }',
     r"layer 'c' \(Convolution\): output spatial size \(-4294967286, -4294967286\) is not positive"),
    (INPUT.format(dims=dims(1, 3, 8, 8)) + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
     'convolution_param { num_output: 2 kernel_size: 4294967295 pad: 2147483647 } }',
     r"layer 'c' \(Convolution\): parameter blob 0: blob shape \(2, 3, 4294967295, 4294967295\)"),
    (INPUT.format(dims=dims(1, 3, 1000000000, 224)) + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
     'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }',
     r"layer 'data' \(Input\): top 0 \('data'\): blob shape \(1, 3, 1000000000, 224\)"),
    (INPUT.format(dims=dims(2, 16, 4, 4)) + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
     'pooling_param { pool: MAX kernel_size: 2 stride: 1073741824 } }',   # a ceil window far past the input
     r"layer 'p' \(Pooling\): the padded bottom its windows span .*blob shape \(2, 16, 1073741826, 1073741826\)"),
    (INPUT.format(dims=dims(2, 3, 227, 227)) + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
     'convolution_param { num_output: 16 kernel_h: 11 kernel_w: 1000000 } }',   # refused before 2 GB of weights
     r"layer 'c' \(Convolution\): output spatial size \(217, -999772\) is not positive"),
    (INPUT.format(dims=dims(*[1] * 33)), r"layer 'data' \(Input\): top 0 \('data'\): blob of 33 axes; a blob has at "
                                         r"most 32 axes"),
]


LRN = ('layer {{ name: "l" type: "LRN" bottom: "data" top: "l" '
       'lrn_param {{ local_size: {size} norm_region: {region} }} }}')
SIZES += [
    (INPUT.format(dims=dims(1, 3, 8, 8)) + LRN.format(size=4294967295, region="ACROSS_CHANNELS"),     # Caffe's padded_square (1, C + size - 1, H, W)
     r"layer 'l' \(LRN\): local_size 4294967295 pads the channels to: blob shape \(1, 4294967297, 8, 8\)"),
    (INPUT.format(dims=dims(1, 3, 8, 8)) + LRN.format(size=4294967295, region="WITHIN_CHANNEL"),      # Caffe's int kernel_size of its Pooling
     r"layer 'l' \(LRN\): local_size 4294967295 is over 2147483647"),
    (INPUT.format(dims=dims(2, 3)) + 'layer { name: "s" type: "Reduction" bottom: "data" top: "s" '
     'reduction_param { axis: 0 } } layer { name: "s2" type: "Reduction" bottom: "data" top: "s2" '
     'reduction_param { axis: 0 } } layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "s2" top: "l" }',
     r"layer 'loss' \(EuclideanLoss\): bottom 's' has no axes"),   # LossLayer::Reshape reads shape\(0\)
]


def test_lrn_large_windows_still_run(tmp_path):
    """Large but legal windows run as Caffe's do: WITHIN_CHANNEL's average over a window wider than the
    input is x * (1 + alpha/n^2 * sum of all x^2)^-beta (every window covers the whole 3x3 plane)."""
    x = torch.randn(1, 2, 3, 3)
    for n in (1000001, 2147483647):
        net = build(net_file(tmp_path, INPUT.format(dims=dims(1, 2, 3, 3)) + LRN.format(size=n, region="WITHIN_CHANNEL")))
        y = net.forward(data=x)["l"]
        want = x * (1 + 1.0 / (float(n) * n) * (x * x).sum((2, 3), keepdim=True)) ** -0.75
        torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-6)


def test_data_layer_with_a_huge_batch_is_refused_without_listing_it(tmp_path, art):
    """batch_size 2e9: refused by the top's blob shape, not after listing two billion record indices."""
    with pytest.raises(NetError) as e:
        build(net_file(tmp_path, artifacts.data_net(art["lmdb"], batch=2000000000)))
    one_line(e, r"layer 'data' \(Data\): top 0 \('data'\): blob shape \(2000000000, ")


@pytest.mark.parametrize("text, pattern", SIZES)
def test_sizes_are_refused_before_allocating(tmp_path, text, pattern):
    with pytest.raises(NetError) as e:
        build(net_file(tmp_path, text))
    one_line(e, pattern)


def test_sizes_through_the_cli(tmp_path, capsys):
    """The same nets through `caffe time` (which builds the net first): exit 2, one line, nothing written."""
    before = None
    for k, (text, pattern) in enumerate(SIZES):
        model = net_file(tmp_path, text, f"n{k}.prototxt")
        before = tree_state(str(tmp_path))
        line = run_cli(capsys, "recaffe.tools.caffe", ["time", f"-model={model}", "-iterations=1"], "caffe")
        assert re.search(pattern, line), (pattern, line)
        assert tree_state(str(tmp_path)) == before


def test_oversized_nets_through_the_cli(tmp_path, capsys):
    model = net_file(tmp_path, INPUT.format(dims=dims(1, 3, 100000, 100000)))
    before = tree_state(str(tmp_path))
    line = run_cli(capsys, "recaffe.tools.caffe", ["time", f"-model={model}", "-iterations=1"], "caffe")
    assert "blob shape (1, 3, 100000, 100000) has 30000000000 elements" in line
    assert tree_state(str(tmp_path)) == before


def test_memory_budget(tmp_path, monkeypatch):
    """Parameters must fit in the memory available, parameters + blobs in the memory limit."""
    text = INPUT.format(dims=dims(1, 3, 64, 64)) + ('layer { name: "ip" type: "InnerProduct" bottom: "data" '
                                                    'top: "ip" inner_product_param { num_output: 100 } }')
    path = net_file(tmp_path, text)
    monkeypatch.setenv("RECAFFE_MEMORY_LIMIT", "1M")     # weights: 100 x 12288 floats = 4.7 MiB
    with pytest.raises(NetError) as e:
        build(path)
    one_line(e, r"layer 'ip' \(InnerProduct\): parameter blob 0 \(100, 12288\): needs 4\.7 MiB, more than "
                r"RECAFFE_MEMORY_LIMIT \(1\.0 MiB\)")
    monkeypatch.setenv("RECAFFE_MEMORY_LIMIT", "4830K")   # the weights (4,915,600 bytes) fit, + blobs do not
    with pytest.raises(NetError) as e:
        build(path)
    one_line(e, r"net '' \(TEST\): parameters 4\.7 MiB \+ blobs 48\.4 KiB: needs 4\.7 MiB, more than "
                r"RECAFFE_MEMORY_LIMIT")
    monkeypatch.setenv("RECAFFE_MEMORY_LIMIT", "off")
    assert build(path).blob_shapes["ip"] == (1, 100)


def test_memory_limits_follow_rlimits():
    """The available memory counts this process's rlimit headroom (what a capped child can get)."""
    code = ("import resource; from recaffe.protos import limits; "
            "resource.setrlimit(resource.RLIMIT_DATA, (limits._vm('VmData') + (300 << 20), resource.RLIM_INFINITY)); "
            "n, what = limits.memory_available(); print(n >> 20, what)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=ROOT)).stdout.split()
    assert 299 <= int(out[0]) <= 300 and "rlimit" in " ".join(out[1:])


def test_limits_env_parsing(monkeypatch):
    monkeypatch.setenv("RECAFFE_MAX_BLOB_ELEMENTS", "1K")
    assert limits.max_blob_elements() == 1024
    with pytest.raises(NetError) as e:
        limits.check_blob((33, 32), "here", NetError)
    one_line(e, r"here: blob shape \(33, 32\) has 1056 elements, over the limit of 1024 \(RECAFFE_MAX_BLOB_ELEMENTS")
    monkeypatch.setenv("RECAFFE_MAX_BLOB_ELEMENTS", "off")
    assert limits.check_blob((1 << 40,), "here", NetError) == 1 << 40
    monkeypatch.setenv("RECAFFE_MAX_BLOB_ELEMENTS", "lots")
    with pytest.raises(RecaffeError, match="RECAFFE_MAX_BLOB_ELEMENTS='lots': expected a number"):
        limits.max_blob_elements()
    with pytest.raises(NetError, match=r"here: blob shape \(2, -1\) has a negative dimension"):
        limits.check_blob((2, -1), "here", NetError)


def test_net_reshape_and_facade_reshape_are_checked(art):
    import recaffe
    net = build(art["net"])
    with pytest.raises(NetError) as e:
        net.reshape(data=(1, 3, 100000, 100000))
    one_line(e, r"net 'small': input 'data': blob shape \(1, 3, 100000, 100000\) has 30000000000 elements")
    f = recaffe.Net(art["net"], recaffe.TEST)
    with pytest.raises(NetError) as e:
        f.blobs["data"].reshape(1, 3, 100000, 100000)
    one_line(e, r"Blob\.reshape: blob shape \(1, 3, 100000, 100000\)")


def test_hdf5_dataset_declared_huge(tmp_path, capsys):
    """1e6 x 1e6 floats declared in a file of a few KB (chunks never written): refused unread."""
    import h5py
    h5 = str(tmp_path / "huge.h5")
    with h5py.File(h5, "w") as f:
        f.create_dataset("data", shape=(1000000, 1000000), dtype="f4", chunks=(1, 1024))
        f.create_dataset("label", data=np.zeros(1000000, np.float32))
    assert os.path.getsize(h5) < 10 << 20
    lst = artifacts.write(str(tmp_path / "l.txt"), h5 + "\n")
    with pytest.raises(DataError) as e:
        build(net_file(tmp_path, artifacts.hdf5_net(lst)))
    one_line(e, r"huge\.h5: 'data': dataset: blob shape \(1000000, 1000000\) has 1000000000000 elements, over "
                r"the limit of 2147483647")
    cli_time(capsys, net_file(tmp_path, artifacts.hdf5_net(lst)), r"huge\.h5: 'data': dataset: blob shape")


def test_huge_png_in_an_image_list(tmp_path, capsys, art):
    big = artifacts.write(str(tmp_path / "big.png"), artifacts.png_header_only(30000, 30000))
    lst = artifacts.write(str(tmp_path / "list.txt"), f"{art['png']} 0\n{big} 1\n")
    net = build(net_file(tmp_path, artifacts.image_data_net(lst, batch=2)))
    with pytest.raises(DataError) as e:
        net.forward()
    net.layers[0].close()
    one_line(e, r"list\.txt:2: .*big\.png: image of 30000 x 30000 = 900000000 pixels, over the limit")
    db = str(tmp_path / "db")
    before = tree_state(str(tmp_path))
    for flags in ([], ["--encoded"], ["--resize_height=8", "--resize_width=8"]):
        line = run_cli(capsys, "recaffe.tools.convert_imageset", flags + ["/", lst, db], "convert_imageset")
        assert re.search(r"list\.txt:2: .*big\.png: image of 30000 x 30000", line), line
        assert not os.path.exists(db) and tree_state(str(tmp_path)) == before


def test_prototxt_with_millions_of_dims(tmp_path, capsys, monkeypatch):
    """7 million dim: entries (60 MB): refused by size before parsing; under the size limit, a shape of
    thousands of axes is refused by the axes limit."""
    big = str(tmp_path / "dims.prototxt")
    with open(big, "w") as f:
        f.write('layer { name: "data" type: "Input" top: "data" input_param { shape {\n')
        f.write("  dim: 1\n" * 7_000_000)
        f.write("} } }\n")
    with pytest.raises(ProtoError) as e:
        build(big)
    one_line(e, r"dims\.prototxt: prototxt text of 60\.1 MiB is over the limit of 16\.0 MiB \(RECAFFE_MAX_PROTOTXT_BYTES")
    line = run_cli(capsys, "recaffe.tools.caffe", ["time", f"-model={big}"], "caffe")
    assert "prototxt text of 60.1 MiB is over the limit" in line
    small = net_file(tmp_path, INPUT.format(dims=dims(*[1] * 5000)))
    with pytest.raises(NetError) as e:
        build(small)
    one_line(e, r"blob of 5000 axes; a blob has at most 32 axes")
    monkeypatch.setenv("RECAFFE_MAX_PROTOTXT_BYTES", "1K")
    with pytest.raises(ProtoError, match=r"prototxt text of 34\.3 KiB is over the limit of 1\.0 KiB"):
        build(small)


@pytest.mark.parametrize("source", ["/dev/zero", "fifo", "dir"])
def test_model_that_is_not_a_regular_file(tmp_path, capsys, source):
    if source == "fifo":
        source = str(tmp_path / "net.prototxt")
        os.mkfifo(source)
    elif source == "dir":
        source = str(tmp_path)
    kind = {"/dev/zero": "a character device", str(tmp_path): "a directory"}.get(source, "a FIFO")
    with pytest.raises(ProtoError) as e:
        build(source)
    one_line(e, re.escape(source) + f": cannot read: {kind}; expected a regular file")
    line = run_cli(capsys, "recaffe.tools.caffe", ["time", f"-model={source}", "-iterations=1"], "caffe")
    assert f"cannot read: {kind}" in line
    from recaffe.protos.io import read_solver
    with pytest.raises(ProtoError, match=f"cannot read: {kind}"):
        read_solver(source)


def test_weights_and_lists_that_are_not_regular_files(art, tmp_path):
    with pytest.raises(WeightsError, match=r"/dev/zero: cannot read weights: a character device"):
        build(art["net"], weights="/dev/zero")
    with pytest.raises(DataError, match=r"/dev/zero: cannot read list file: a character device"):
        build(net_file(tmp_path, artifacts.image_data_net("/dev/zero")))
    lst = artifacts.write(str(tmp_path / "l.txt"), "/dev/zero 0\n")
    net = build(net_file(tmp_path, artifacts.image_data_net(art["list"])))
    net.layers[0].close()
    from recaffe.netspec.data.sources import ImageListSource
    with pytest.raises(DataError, match=r"l\.txt:1: /dev/zero: cannot read image: a character device"):
        ImageListSource(lst).load(0)


# -- crashes: a damaged LMDB ------------------------------------------------------------------------
def test_truncated_lmdb_is_a_clean_error_not_sigbus(tmp_path, art):
    """Run in children: before the fix, the first read past the end killed the process with SIGBUS."""
    import shutil
    db = str(tmp_path / "cut")
    shutil.copytree(art["lmdb"], db)
    size = os.path.getsize(os.path.join(db, "data.mdb"))
    os.truncate(os.path.join(db, "data.mdb"), size // 2)
    before = tree_state(str(tmp_path))
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-m", "recaffe.tools.compute_image_mean", db, str(tmp_path / "m.binaryproto")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert re.fullmatch(r"compute_image_mean: error: .*cut: damaged LMDB database: .*data\.mdb has \d+ bytes but "
                        r"its meta page says the data runs to page \d+ .*\n", p.stderr), p.stderr
    code = ("from recaffe.netspec.net.net import Net; from recaffe.protos.errors import RecaffeError\n"
            f"try: Net({artifacts.data_net(db)!r})\nexcept RecaffeError as e: print('CLEAN', e)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("CLEAN ") and "damaged LMDB database" in p.stdout, p
    assert tree_state(str(tmp_path)) == before


# -- bad data accepted ------------------------------------------------------------------------------
@pytest.mark.parametrize("value, pattern", [
    (b"", r"key '00000001': datum of channels x height x width = 0 x 0 x 0; a datum needs at least one pixel"),
    ("zero", r"key '00000001': datum of channels x height x width = 3 x 0 x 16"),
    ("negative", r"key '00000001': datum of channels x height x width = -1 x -16 x 16"),
])
def test_empty_or_zero_sized_datums_are_refused(tmp_path, capsys, value, pattern):
    from recaffe.protos import caffe_pb2
    if value == "zero":
        value = caffe_pb2.Datum(channels=3, height=0, width=16, label=1).SerializeToString()
    elif value == "negative":
        value = caffe_pb2.Datum(channels=-1, height=-16, width=16, data=b"\0" * 16, label=1).SerializeToString()
    db = artifacts.write_lmdb(str(tmp_path / "db"), artifacts.raw_datums(1) + [value] + artifacts.raw_datums(1))
    line = run_cli(capsys, "recaffe.tools.compute_image_mean", [db, str(tmp_path / "m.binaryproto")],
                   "compute_image_mean")
    assert re.search(pattern, line), line
    assert not os.path.exists(tmp_path / "m.binaryproto")
    net = build(net_file(tmp_path, artifacts.data_net(db, batch=2)))
    try:
        with pytest.raises(DataError) as e:
            net.forward()
        one_line(e, pattern)
    finally:
        net.layers[0].close()


def _lmdb_root(data):
    """(page size, root page number) of an LMDB data file's newest meta page."""
    from recaffe.netspec.data import lmdb_check
    metas = [lmdb_check._meta(data, 0), lmdb_check._meta(data, lmdb_check._meta(data, 0)[0])]
    psize, _, _, _, root, _, _ = max(metas, key=lambda m: m[6])
    return psize, root


@pytest.mark.parametrize("damage, pattern", [
    ("leaf flags", r"page \d+ has flags 0x1, a leaf page expected"),            # liblmdb: mdb_cassert abort
    ("record size", r"page \d+: a record's overflow pages lie outside the file"),   # read past the map
    ("overflow page", r"page \d+: a record's overflow pages lie outside the file"),
    ("node offset", r"page \d+: a node offset outside"),
    ("entries", r"\d+ records in the tree, the meta page says 999"),
])
def test_damaged_lmdb_pages_are_clean_errors(tmp_path, damage, pattern):
    """Pages liblmdb trusts (lmdb_check): each damage, in a child (it aborted or faulted before)."""
    import struct
    db = artifacts.write_lmdb(str(tmp_path / "db"), artifacts.raw_datums(3, shape=(3, 40, 40)))
    path = os.path.join(db, "data.mdb")
    data = bytearray(open(path, "rb").read())
    psize, root = _lmdb_root(data)
    base = root * psize
    node = base + struct.unpack_from("<H", data, base + 16)[0]     # the first record of the root leaf
    if damage == "leaf flags":
        data[base + 10] = 0x01
    elif damage == "record size":
        data[node:node + 4] = b"\xff\xff\xff\x7f"
    elif damage == "overflow page":
        ksize = struct.unpack_from("<H", data, node + 6)[0]
        struct.pack_into("<Q", data, node + 8 + ksize, 10 ** 6)
    elif damage == "node offset":
        struct.pack_into("<H", data, base + 16, psize - 2)
    else:
        newest = max((0, psize), key=lambda off: struct.unpack_from("<Q", data, off + 16 + 128)[0])
        struct.pack_into("<Q", data, newest + 88 + 32, 999)   # main db md_entries
    open(path, "wb").write(bytes(data))
    code = ("import sys; sys.path.insert(0, 'tests')\nfrom fuzz import cases\nfrom recaffe.protos.errors import RecaffeError\n"
            f"try: cases.run_data({db!r})\nexcept RecaffeError as e: print('CLEAN', e)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 0 and p.stdout.startswith("CLEAN "), (p.returncode, p.stdout, p.stderr[-500:])
    assert "db: damaged LMDB database: " in p.stdout and re.search(pattern, p.stdout), p.stdout


# -- bad solver files -------------------------------------------------------------------------------
def test_extreme_solver_values_follow_c_arithmetic():
    """Caffe computes rates with C's pow/exp: overflow is inf, a domain error NaN (Python's math raised)."""
    import math
    from recaffe.protos import caffe_pb2
    from recaffe.solver.policies import learning_rate
    p = caffe_pb2.SolverParameter(base_lr=0.01, lr_policy="exp", gamma=1e10)
    assert learning_rate(p, 100)[0] == math.inf                       # 0.01 * pow(1e10, 100)
    p = caffe_pb2.SolverParameter(base_lr=0.01, lr_policy="sigmoid", gamma=-1e10, stepsize=1)
    assert learning_rate(p, 100)[0] == 0.0                            # 0.01 / (1 + exp(1e12))
    p = caffe_pb2.SolverParameter(base_lr=0.01, lr_policy="inv", gamma=-1.0, power=0.5)
    assert math.isnan(learning_rate(p, 3)[0])                         # pow(1 - 3, -0.5)


def test_adam_with_infinite_momentum2_trains_into_nan_like_caffe(tmp_path, art):
    from recaffe.solver.solver import Solver
    solver = artifacts.write(str(tmp_path / "s.prototxt"), artifacts.SOLVER.format(
        net=art["train_net"], max_iter=2, prefix=str(tmp_path / "snap"), type="Adam") + "momentum2: inf\n")
    s = Solver(solver)
    s.step(1)                                             # sqrt(1 - pow(inf, 1)) is NaN, as in C
    assert torch.isnan(s.net.params["conv1"][0]).all()


def test_snapshot_prefix_with_a_nul_byte(tmp_path, art):
    from recaffe.solver.solver import Solver
    solver = artifacts.write(str(tmp_path / "s.prototxt"), artifacts.SOLVER.format(
        net=art["train_net"], max_iter=2, prefix=str(tmp_path / "sn\\000ap"), type="SGD"))
    s = Solver(solver)
    with pytest.raises(RecaffeError) as e:
        s.snapshot()
    one_line(e, r"sn\\x00ap_iter_0\.caffemodel': cannot write: a file name cannot contain a NUL byte")
    assert sorted(os.listdir(tmp_path)) == ["s.prototxt"]


def test_fork_layer_without_a_bottom(tmp_path):
    """Fuzz case (seed 1, #6148): an Input turned into ConvolutionDepthwise has no bottom; the count
    check names the layer instead of an IndexError."""
    text = ('layer { name: "c" type: "ConvolutionDepthwise" top: "c" '
            'convolution_param { num_output: 3 kernel_size: 3 } }')
    with pytest.raises(NetError) as e:
        build(net_file(tmp_path, text))
    one_line(e, r"layer 'c' \(ConvolutionDepthwise\): takes at least 1 bottom blob\(s\), got 0")


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_a_failed_commit_leaves_nothing_behind(tmp_path, backend):
    """The final rename fails (another process created the path meanwhile): the error reaches the caller
    and the hidden staging folder is removed (StagedDatabase.__exit__ aborts when the commit fails)."""
    from recaffe.netspec.data.lmdb_io import LMDBWriter
    if backend == "leveldb":
        pytest.importorskip("plyvel")
        from recaffe.netspec.data.leveldb_io import LevelDBWriter as Writer
    else:
        Writer = LMDBWriter
    db = tmp_path / "db"
    with pytest.raises(OSError):
        with Writer(str(db)) as w:
            w.put("k", b"v")
            db.mkdir()
            (db / "other").write_text("someone else's")
    assert sorted(os.listdir(tmp_path)) == ["db"] and os.listdir(db) == ["other"]


def test_lmdb_map_full_is_one_line_and_nothing_is_written(tmp_path):
    from recaffe.netspec.data.lmdb_io import LMDBWriter
    db = tmp_path / "db"
    with pytest.raises(DataError) as e:
        with LMDBWriter(str(db), map_size=1 << 16) as w:
            for i in range(100):
                w.put(f"{i:04d}", b"x" * 4096)
    one_line(e, r"db: the database outgrew its 64.0 KiB map .*; nothing was written")
    assert os.listdir(tmp_path) == []
