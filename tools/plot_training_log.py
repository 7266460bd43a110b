"""Plot a Caffe-format training log (ours or Caffe's) to a PNG: training loss, test outputs (accuracy,
loss) and the learning rate against iterations (matplotlib, Agg backend).

    tools/plot_training_log OUT.png train.log [other.log ...]     (or python -m recaffe.tools.plot_training_log)

Log lines are read with solver/logparse.py (tools/extra/parse_log.py's rules)."""
import os

from recaffe.protos.errors import RecaffeError
from recaffe.tools._cli import FlagParser, run


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
    p = FlagParser("plot_training_log", "plot Caffe-format training logs (loss, test outputs, lr) to a PNG")
    p.add_argument("out", metavar="OUT.png", help="the PNG to write")
    p.add_argument("logs", nargs="+", metavar="LOG", help="training logs (ours or Caffe's)")
    a = p.parse_args(argv)
    if not a.out.endswith(".png"):
        p.error(f"OUT.png must end in .png, got '{a.out}'")
    plot(a.out, a.logs)
    return 0


def cli(argv=None):
    """Entry point (tools/plot_training_log, console script): through the error boundary (tools/_cli.py)."""
    return run(main, "plot_training_log", argv)


if __name__ == "__main__":
    cli()
