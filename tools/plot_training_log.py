"""Plot a Caffe-format training log (ours or Caffe's) to a PNG: training loss, test outputs (accuracy,
loss) and the learning rate against iterations (matplotlib, Agg backend).

    python -m recaffe.tools.plot_training_log OUT.png train.log [other.log ...]

Log lines are read with solver/logparse.py (tools/extra/parse_log.py's rules)."""
import os
import sys

from recaffe.protos.errors import RecaffeError


def plot(out, logs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from recaffe.solver.logparse import parse_log
    fig, axes = plt.subplots(3, 1, figsize=(8, 10), sharex=True)
    for path in logs:
        try:
            with open(path, errors="replace") as f:
                parsed = parse_log(f)
        except OSError as e:
            raise RecaffeError(f"{path}: cannot read log: {e.strerror}") from None
        if not parsed["train"] and not parsed["test"]:
            raise RecaffeError(f"{path}: no 'Iteration N' lines; not a Caffe training log")
        tag = os.path.basename(path)
        rows = [r for r in parsed["train"] if "loss" in r]
        axes[0].plot([r["iter"] for r in rows], [r["loss"] for r in rows], label=f"{tag} train loss")
        names = sorted({k for r in parsed["test"] for k in r if k != "iter"})
        for n in names:
            rs = [r for r in parsed["test"] if n in r]
            axes[1].plot([r["iter"] for r in rs], [r[n] for r in rs], marker="o", label=f"{tag} test {n}")
        rows = [r for r in parsed["train"] if "lr" in r]
        axes[2].plot([r["iter"] for r in rows], [r["lr"] for r in rows], label=f"{tag} lr")
    for ax, title in zip(axes, ("training loss", "test outputs", "learning rate")):
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    axes[2].set_xlabel("iterations")
    fig.tight_layout()
    tmp = out + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or not args[0].endswith(".png"):
        raise RecaffeError("usage: plot_training_log OUT.png LOG [LOG ...]")
    plot(args[0], args[1:])
    return 0


def cli():
    """Console entry point (setup.py): one-line errors, exit status 2."""
    from recaffe.solver.cli import run
    run(main)


if __name__ == "__main__":
    cli()
