"""The ``caffe`` verbs (tools/caffe.cpp: train, test, time, device_query) over recaffe's packages. Each
takes the flag dict of tools/caffe.py (FLAGS) and returns the exit status. Log lines use glog's format
(solver.log); each verb validates everything it reads (solver, nets, weights) before writing anything.

``train`` is the one place that turns flags into a device and a running Solver: ``-gpu 0,1`` / ``-gpu all``
start one process per device (solver.launch; each runs ``train`` again as one rank), under torchrun each
process joins the group (solver.distributed); ``-amp``, ``-channels_last`` (solver.amp) and ``-compile``
(solver.compiled) change how the Solver runs.
"""
import torch

from recaffe.protos.errors import SolverError
from recaffe.solver.log import log, num


def stages(flags):
    return tuple(s for s in flags["stage"].split(",") if s)


def select_device(gpu, solver_param=None):
    """-gpu semantics (tools/caffe.cpp get_gpus): '' -> the solver's explicit solver_mode: GPU, else CPU;
    '-1' -> CPU; 'all' or ids -> the first id (test, time; train plans all of them: solver.launch).
    Without CUDA: CPU, with a note."""
    from recaffe.solver.launch import plan
    return plan(gpu, solver_param, single=True).device


def train(flags):
    """caffe train: read the solver (-iterations overrides max_iter), pick the device, build the Solver,
    load -weights, install the signal effects, solve (resuming from -snapshot)."""
    from recaffe.solver.netsetup import read_solver_param
    from recaffe.solver.solver import Solver
    if not flags["solver"]:
        raise SolverError("train needs -solver=<solver.prototxt>")
    if flags["snapshot"] and flags["weights"]:
        raise SolverError("give -snapshot or -weights, not both (-snapshot resumes, -weights fine-tunes)")
    if flags["snapshot_format"] not in ("", "binaryproto", "hdf5", "pth"):
        raise SolverError(f"-snapshot_format: '{flags['snapshot_format']}'; valid: binaryproto, hdf5, pth")
    param, _ = read_solver_param(flags["solver"])
    if flags["iterations"] >= 0:
        param.max_iter = flags["iterations"]
    from recaffe.solver import amp, distributed, launch
    amp.parse_amp(flags["amp"])
    plan = launch.plan(flags["gpu"], param)
    if plan.spawn:                  # -gpu 0,1 / all: one process per device, each runs this verb as a rank
        return launch.spawn(len(plan.devices), SPAWN_TARGET, flags)
    device = plan.device
    distributed.init(device)        # under torchrun / spawn: join the group (a no-op for one process)
    level = flags["level"] if flags["level"] else None
    solver = Solver(flags["solver"], param=param, stages=stages(flags), level=level, device=device,
                    amp=flags["amp"] or None, channels_last=flags["channels_last"])
    if flags["compile"]:            # opt-in torch.compile of the train net (solver.compiled)
        from recaffe.solver.compiled import compile_net
        compile_net(solver.net)
    solver.snapshot_format = flags["snapshot_format"] or solver.snapshot_format
    if flags["weights"]:
        solver.load_weights(flags["weights"])
    solver.install_signal_handlers(flags["sigint_effect"], flags["sighup_effect"])
    log("Starting Optimization", "caffe.cpp:248")
    solver.solve(flags["snapshot"] or None)
    distributed.shutdown()
    return 0


#: what each process started by ``-gpu 0,1`` runs (solver.launch.spawn: "module:function" of flags)
SPAWN_TARGET = "recaffe.tools.verbs:train"


def test(flags):
    """caffe test: -iterations batches of the TEST net with -weights, through solver.scoring (the loop
    the solver's test phase uses): 'Batch i, <output> = v' per batch, then 'Loss: ' and the means."""
    from recaffe.netspec.net.net import Net
    from recaffe.solver import scoring
    from recaffe.solver.netsetup import load_checked
    if not flags["model"]:
        raise SolverError("test needs -model=<net.prototxt>")
    if not flags["weights"]:
        raise SolverError("test needs -weights=<model.caffemodel> (comma-separated list allowed)")
    device = select_device(flags["gpu"])
    net = Net(flags["model"], phase="TEST", stages=stages(flags), level=flags["level"])
    for w in flags["weights"].split(","):
        load_checked(net, w)
    net.to(device)                  # the Net moves its data layers' tops too
    iters = _positive_iterations(flags)
    log(f"Running for {iters} iterations.", "caffe.cpp:281")

    def on_batch(i, outs):
        for name, values in outs:
            for v in values:
                log(f"Batch {i}, {name} = {num(v)}", "caffe.cpp:304")

    scores = scoring.score(net, iters, on_batch=on_batch)
    log(f"Loss: {num(scores.loss)}", "caffe.cpp:309")
    for line in scoring.mean_lines(scores.means, net.blob_loss_weights):
        log(line, "caffe.cpp:321")
    return 0


def _positive_iterations(flags):
    if flags["iterations"] < 1:
        raise SolverError(f"-iterations must be >= 1, got {flags['iterations']}")
    return flags["iterations"]


def time_cmd(flags):
    """caffe time: forward/backward timings per layer (solver.timing)."""
    from recaffe.solver.timing import time_net
    if not flags["model"]:
        raise SolverError("time needs -model=<net.prototxt>")
    phase = flags["phase"] or "TRAIN"
    if phase not in ("TRAIN", "TEST"):
        raise SolverError(f"-phase: '{phase}'; valid: TRAIN, TEST")
    device = select_device(flags["gpu"])
    time_net(flags["model"], phase, _positive_iterations(flags), stages(flags), flags["level"], device,
             compile=flags["compile"])
    return 0


def device_query(flags):
    """caffe device_query: the CUDA devices torch sees (-gpu: which ones)."""
    if not torch.cuda.is_available():
        log("No CUDA device is available to torch (CPU only).", "caffe.cpp:124")
        return 0
    if flags["gpu"] in ("", "all"):
        ids = range(torch.cuda.device_count())
    else:
        try:
            ids = [int(x) for x in flags["gpu"].split(",") if x]
        except ValueError:
            raise SolverError(f"-gpu: expected device ids (e.g. 0 or 0,1) or 'all', got '{flags['gpu']}'") from None
    for i in ids:
        p = torch.cuda.get_device_properties(i)
        log(f"Querying GPUs {i}", "caffe.cpp:127")
        for k, v in (("Device id", i), ("Name", p.name), ("Major revision number", p.major),
                     ("Minor revision number", p.minor), ("Total global memory", p.total_memory),
                     ("Number of multiprocessors", p.multi_processor_count)):
            log(f"{k + ':':<30}{v}", "common.cpp:170")
    return 0


VERBS = {"train": train, "test": test, "time": time_cmd, "device_query": device_query}
