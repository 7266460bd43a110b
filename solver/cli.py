"""The ``caffe`` command's verbs (tools/caffe.cpp: train, test, time, device_query) over recaffe.

    python -m recaffe.tools.caffe train -solver=solver.prototxt [-weights=a.caffemodel,b.pth | -snapshot=x.solverstate]
                                [-gpu=0|all|-1] [-iterations=N] [-stage=a,b] [-level=N]
                                [-sigint_effect=stop] [-sighup_effect=snapshot]
                                [-amp=bf16|fp16] [-channels_last]
    torchrun --nproc_per_node=N -m recaffe.tools.train -solver=...   (data parallel; -gpu 0,1 / all spawns)
    python -m recaffe.tools.caffe test -model=net.prototxt -weights=w.caffemodel [-iterations=50]
    python -m recaffe.tools.caffe time -model=net.prototxt [-iterations=50] [-phase=TRAIN]
    python -m recaffe.tools.caffe device_query [-gpu=0]

Flags are gflags-style (``-flag=v``, ``--flag v``). Log lines use glog's format (solver.log). Each verb
validates everything it reads (solver, nets, weights) before writing anything. Train only: -iterations
overrides max_iter, -snapshot_format=pth writes .pth snapshots.
"""
import sys

import torch

from recaffe.protos.errors import RecaffeError, SolverError
from .log import log, num, output_lines

FLAGS = {"solver": "", "model": "", "weights": "", "snapshot": "", "gpu": "", "iterations": -1, "phase": "",
         "level": 0, "stage": "", "sigint_effect": "stop", "sighup_effect": "snapshot",
         "snapshot_format": "", "debug": False, "amp": "", "channels_last": False, "compile": False}
VERBS = ("train", "test", "time", "device_query")
USAGE = ("usage: caffe <command> <args>\ncommands:\n  train           train or finetune a model\n"
         "  test            score a model\n  device_query    show GPU diagnostic information\n"
         "  time            benchmark model execution time")


def parse(argv):
    """gflags spellings: -f=v, --f=v, -f v, --f v; booleans -f, --f=false, --nof. -> (flags, positionals)."""
    flags, pos, args, i = dict(FLAGS), [], list(argv), 0
    while i < len(args):
        a = args[i]
        i += 1
        if not a.startswith("-") or a == "-":
            pos.append(a)
            continue
        name, eq, value = a.lstrip("-").partition("=")
        if name in ("h", "help", "helpfull"):
            raise SystemExit(USAGE)
        if name not in FLAGS and name.startswith("no") and isinstance(FLAGS.get(name[2:]), bool) and not eq:
            flags[name[2:]] = False
            continue
        if name not in FLAGS:
            raise SolverError(f"unknown flag '{a}'; valid: " + ", ".join("-" + k for k in sorted(FLAGS)))
        default = FLAGS[name]
        if isinstance(default, bool):
            if eq and value.lower() not in ("true", "false", "1", "0"):
                raise SolverError(f"-{name}: expected true or false, got '{value}'")
            flags[name] = not eq or value.lower() in ("true", "1")
            continue
        if not eq:
            if i >= len(args):
                raise SolverError(f"-{name} needs a value")
            value, i = args[i], i + 1
        try:
            flags[name] = type(default)(value)
        except ValueError:
            raise SolverError(f"-{name}: expected {type(default).__name__}, got '{value}'") from None
    return flags, pos


def _stages(flags):
    return tuple(s for s in flags["stage"].split(",") if s) if flags["stage"] else ()


def select_device(gpu, solver_param=None):
    """-gpu semantics (tools/caffe.cpp): '' -> the solver's explicit solver_mode: GPU, else CPU;
    '-1' -> CPU; 'all' or ids -> the first id (test, time). Without CUDA: CPU, with a note."""
    from .launch import plan
    return plan(gpu, solver_param, single=True).device


def train(flags):
    from .netsetup import read_solver_param
    from .solver import Solver
    if not flags["solver"]:
        raise SolverError("train needs -solver=<solver.prototxt>")
    if flags["snapshot"] and flags["weights"]:
        raise SolverError("give -snapshot or -weights, not both (-snapshot resumes, -weights fine-tunes)")
    param, _ = read_solver_param(flags["solver"])
    if flags["iterations"] >= 0:
        param.max_iter = flags["iterations"]
    if flags["snapshot_format"] not in ("", "binaryproto", "hdf5", "pth"):
        raise SolverError(f"-snapshot_format: '{flags['snapshot_format']}'; valid: binaryproto, hdf5, pth")
    # [scale-out] -gpu 0,1 / all: one process per GPU; under torchrun: this rank's device and group
    from . import amp, distributed, launch
    amp.parse_amp(flags["amp"])
    plan = launch.plan(flags["gpu"], param)
    if plan.spawn:
        return launch.spawn(len(plan.devices), "recaffe.solver.cli:train", flags)
    device = plan.device
    distributed.init(device)
    level = flags["level"] if flags["level"] else None
    solver = Solver(flags["solver"], param=param, stages=_stages(flags), level=level, device=device,
                    amp=flags["amp"] or None, channels_last=flags["channels_last"])
    if flags["compile"]:            # [scale-out] opt-in torch.compile of the train net (solver.compiled)
        from .compiled import compile_net
        compile_net(solver.net)
    solver.snapshot_format = flags["snapshot_format"] or solver.snapshot_format
    if flags["weights"]:
        solver.load_weights(flags["weights"])
    solver.install_signal_handlers(flags["sigint_effect"], flags["sighup_effect"])
    log("Starting Optimization", "caffe.cpp:248")
    solver.solve(flags["snapshot"] or None)
    distributed.shutdown()
    return 0


def test(flags):
    from recaffe.netspec.net.net import Net
    from .netsetup import load_checked
    if not flags["model"]:
        raise SolverError("test needs -model=<net.prototxt>")
    if not flags["weights"]:
        raise SolverError("test needs -weights=<model.caffemodel> (comma-separated list allowed)")
    device = select_device(flags["gpu"])
    net = Net(flags["model"], phase="TEST", stages=_stages(flags), level=flags["level"])
    for w in flags["weights"].split(","):
        load_checked(net, w)
    net.to(device)                  # the Net moves its data layers' tops too
    iters = flags["iterations"] if flags["iterations"] >= 0 else 50
    log(f"Running for {iters} iterations.", "caffe.cpp:290")
    sums, loss = None, 0.0
    with torch.no_grad():
        for i in range(iters):
            net()
            loss += float(net.loss) if net.loss is not None else 0.0
            outs = [(n, net.blobs[n].reshape(-1).tolist()) for n in net.outputs]
            if sums is None:
                sums = [(n, [0.0] * len(v)) for n, v in outs]
            for (n, acc), (_, vals) in zip(sums, outs):
                for j, v in enumerate(vals):
                    acc[j] += v
                    log(f"Batch {i}, {n} = {num(v)}", "caffe.cpp:313")
    log(f"Loss: {num(loss / max(iters, 1))}", "caffe.cpp:318")
    means = [(n, [v / max(iters, 1) for v in acc]) for n, acc in (sums or [])]
    for line in output_lines("Test", means, net.blob_loss_weights):
        name_part = line.split(": ", 1)[1]   # caffe test prints '<name> = <mean>' without the prefix
        log(name_part, "caffe.cpp:330")
    return 0


def time_cmd(flags):
    from .timing import time_net
    if not flags["model"]:
        raise SolverError("time needs -model=<net.prototxt>")
    phase = flags["phase"] or "TRAIN"
    if phase not in ("TRAIN", "TEST"):
        raise SolverError(f"-phase: '{phase}'; valid: TRAIN, TEST")
    device = select_device(flags["gpu"])
    iters = flags["iterations"] if flags["iterations"] >= 0 else 50
    time_net(flags["model"], phase, iters, _stages(flags), flags["level"], device, compile=flags["compile"])
    return 0


def device_query(flags):
    if not torch.cuda.is_available():
        log("No CUDA device is available to torch (CPU only).", "caffe.cpp:124")
        return 0
    ids = range(torch.cuda.device_count()) if flags["gpu"] in ("", "all") else [int(x) for x in flags["gpu"].split(",")]
    for i in ids:
        p = torch.cuda.get_device_properties(i)
        log(f"Querying GPUs {i}", "caffe.cpp:127")
        for k, v in (("Device id", i), ("Name", p.name), ("Major revision number", p.major),
                     ("Minor revision number", p.minor), ("Total global memory", p.total_memory),
                     ("Number of multiprocessors", p.multi_processor_count)):
            log(f"{k + ':':<30}{v}", "common.cpp:170")
    return 0


def main(argv=None, verb=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if verb is None:
        if not argv or argv[0] not in VERBS:
            raise SolverError(f"unknown command '{argv[0] if argv else ''}'; valid: {', '.join(VERBS)}\n{USAGE}")
        verb, argv = argv[0], argv[1:]
    flags, pos = parse(argv)
    if pos:
        raise SolverError(f"unexpected argument '{pos[0]}' (flags are -name=value)")
    for k in ("sigint_effect", "sighup_effect"):
        if flags[k] not in ("stop", "snapshot", "none"):
            raise SolverError(f"-{k}: '{flags[k]}'; valid: stop, snapshot, none")
    return {"train": train, "test": test, "time": time_cmd, "device_query": device_query}[verb](flags)


def run(fn, argv=None):
    """Call ``fn`` with tools/_cli.py's error handling when present (one line, exit 2)."""
    try:
        from recaffe.tools._cli import run as cli_run
    except ImportError:
        cli_run = None
    if cli_run is not None:
        return cli_run(fn)
    try:
        sys.exit(fn())
    except RecaffeError as e:
        print(f"{sys.argv[0].rsplit('/', 1)[-1]}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        sys.exit(2)
