"""The ``caffe`` command (Caffe's tools/caffe.cpp): ``caffe <train|test|time|device_query> [flags]``.

    tools/caffe train -solver=solver.prototxt [-weights=a.caffemodel,b.pth | -snapshot=x.solverstate]
                      [-gpu=0|all|-1] [-iterations=N] [-stage=a,b] [-level=N]
                      [-sigint_effect=stop] [-sighup_effect=snapshot] [-snapshot_format=pth]
                      [-amp=bf16|fp16] [-channels_last] [-compile]
    torchrun --nproc_per_node=N tools/train -solver=...     (data parallel; -gpu 0,1 / all spawns itself)
    tools/caffe test -model=net.prototxt -weights=w.caffemodel [-iterations=50]
    tools/caffe time -model=net.prototxt [-iterations=50] [-phase=TRAIN] [-compile]
    tools/caffe device_query [-gpu=0]

Also ``recaffe <verb>`` (console script), ``tools/train`` (= ``caffe train``), ``tools/test``,
``tools/time`` and ``python -m recaffe.tools.caffe``. ``-help`` after a verb lists its flags as gflags does
(``caffe -help`` lists the verbs). The verbs themselves are in tools/verbs.py.

FLAGS is the flag table: one line per flag, the verbs that use it, Caffe's own description where Caffe
has the flag. Like Caffe (whose gflags are global), every verb accepts every flag of the table; a flag
the verb does not use is ignored with a warning. Each verb's -help lists only its own flags.
"""
import sys

from recaffe.tools._cli import Flag, FlagParser, UsageError, run, tool_name

_ALL = "train test time device_query"
SIGNAL_EFFECTS = ("stop", "snapshot", "none")       # tools/caffe.cpp GetRequestedAction
FLAGS = [  # (verbs, Flag(name, type, default, description))
    ("train", Flag("solver", str, "", "The solver definition protocol buffer text file.")),
    ("test time", Flag("model", str, "", "The model definition protocol buffer text file.")),
    ("train test", Flag("weights", str, "", "Optional; the pretrained weights to initialize finetuning, "
                        "separated by ','. Cannot be set simultaneously with snapshot.")),
    ("train", Flag("snapshot", str, "", "Optional; the snapshot solver state to resume training.")),
    (_ALL, Flag("gpu", str, "", "Optional; run in GPU mode on given device IDs separated by ','.Use "
                "'-gpu all' to run on all available GPUs. The effective training batch size is multiplied "
                "by the number of devices.")),
    ("test time", Flag("iterations", int, 50, "The number of iterations to run.")),
    ("train", Flag("iterations", int, -1, "Optional (recaffe); train until this iteration instead of the "
                   "solver's max_iter (-1: max_iter).")),
    ("time", Flag("phase", str, "", "Optional; network phase (TRAIN or TEST). Only used for 'time'.")),
    ("train test time", Flag("level", int, 0, "Optional; network level.")),
    ("train test time", Flag("stage", str, "", "Optional; network stages (not to be confused with phase), "
                             "separated by ','.")),
    ("train", Flag("sigint_effect", str, "stop", "Optional; action to take when a SIGINT signal is received: "
                   "snapshot, stop or none.")),
    ("train", Flag("sighup_effect", str, "snapshot", "Optional; action to take when a SIGHUP signal is "
                   "received: snapshot, stop or none.")),
    ("train", Flag("snapshot_format", str, "", "Optional (recaffe); snapshot file format: binaryproto, hdf5 "
                   "or pth (default: the solver's snapshot_format).")),
    ("train", Flag("amp", str, "", "Optional (recaffe); mixed precision: bf16 or fp16 (forward under "
                   "torch.autocast, float32 weights and histories; fp16 with a loss scaler).")),
    ("train", Flag("channels_last", bool, False, "Optional (recaffe); weights and 4-D data in channels-last "
                   "memory format.")),
    ("train time", Flag("compile", bool, False, "Optional (recaffe); run the net through torch.compile "
                        "(time: eager and compiled both reported).")),
]
VERBS = {  # verb: (Caffe's one-line description, usage after the verb)
    "train": ("train or finetune a model",
              "-solver=solver.prototxt [-weights=w.caffemodel[,x.pth] | -snapshot=s.solverstate] [flags]"),
    "test": ("score a model", "-model=net.prototxt -weights=w.caffemodel [-iterations=50] [flags]"),
    "device_query": ("show GPU diagnostic information", "[-gpu=0]"),
    "time": ("benchmark model execution time", "-model=net.prototxt [-iterations=50] [-phase=TRAIN] [flags]"),
}


def usage(prog="caffe"):
    """Caffe's usage text (tools/caffe.cpp: gflags::SetUsageMessage) with this program's name."""
    return (f"usage: {prog} <command> <args>\n\ncommands:\n"
            + "".join(f"  {v:<16}{d}\n" for v, (d, _) in VERBS.items())
            + f"\n'{prog} <command> -help' lists a command's flags (tools/train -help: the same as tools/caffe "
              "train -help).")


def verb_flags(verb):
    """{name: Flag} the verb uses (its -help lists these)."""
    return {f.name: f for verbs, f in FLAGS if verb in verbs.split()}


def parser(verb, prog):
    """The verb's FlagParser: its own flags listed, every other flag of the table accepted."""
    desc, line = VERBS[verb]
    p = FlagParser(prog, f"{desc} (Caffe's `caffe {verb}`)", usage=f"{prog} {line}")
    own = verb_flags(verb)
    for f in own.values():
        p.add(f)
    for _, f in FLAGS:
        if f.name not in own and f.name not in p.flags:
            p.add(f, show=False)
    return p


def _general_help(prog):
    print(f"{prog}: command line brew (Caffe's tools on PyTorch)\n{usage(prog)}")


def parse(argv, verb=None, prog=None):
    """(verb, {flag: value}) from a command line (``verb`` given: the line holds only flags)."""
    prog = prog or tool_name()
    args = list(argv)
    if verb is None:
        if args and args[0].lstrip("-") in ("help", "h", "helpshort", "helpfull"):
            _general_help(prog)
            raise SystemExit(0)
        if not args or args[0] not in VERBS:
            got = f"unknown command '{args[0]}'" if args else "no command given"
            raise UsageError(f"{got}; valid: {', '.join(VERBS)} ({prog} -help lists them)")
        verb, args = args[0], args[1:]
        prog = f"{prog} {verb}"
    p = parser(verb, prog)
    ns = p.parse_args(args)
    flags = vars(ns)
    from recaffe.solver.log import warn
    for name in sorted(p.given - set(verb_flags(verb)) - {"debug"}):
        warn(f"-{name} is not used by '{verb}'; ignored", "caffe.cpp:0")
    for k in ("sigint_effect", "sighup_effect"):
        if flags[k] not in SIGNAL_EFFECTS:
            raise UsageError(f"-{k}: '{flags[k]}'; valid: {', '.join(SIGNAL_EFFECTS)}")
    return verb, flags


def main(argv=None, verb=None):
    """Entry point (console script ``recaffe``, tools/caffe): parse, run the verb, under the error boundary."""
    def go(args):
        from recaffe.tools import verbs
        name, flags = parse(args, verb)
        return verbs.VERBS[name](flags)
    return run(go, None, sys.argv[1:] if argv is None else argv)


cli = main


if __name__ == "__main__":
    main()
