"""The recaffe demo: BVLC's fine-tuning recipe end to end, with no downloads, on two CPU cores.

    tools/demo [--out demo_out] [--quick]          (or recaffe-demo, python -m recaffe.tools.demo)

1. generates a seeded image set for a 10-class source task and a related 5-class target task (PNG files
   and `path label` list files),
2. builds LMDBs with tools/convert_imageset and the mean image with tools/compute_image_mean,
3. pretrains a CaffeNet-shaped net (models/demo.py) on the source task (the "ImageNet" step),
4. runs the fine-tuning notebook's regimes on the small target set: predict-only baseline (pretrained
   features, untrained classifier), classifier only (learn_all=False), end to end (learn_all=True, from
   the classifier-only weights, as the notebook does) and from scratch,
5. prints a table of test accuracies, writes the curves as a PNG, saves the weights as .caffemodel and
   .pth, and classifies one image with tools/classify.
"""
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _say(msg):
    print(msg, flush=True)


def _tool(name, *args):
    """Run one of our command-line tools as a user would; stop the demo on failure."""
    cmd = [sys.executable, "-m", f"recaffe.tools.{name}", *map(str, args)]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        from recaffe.protos.errors import RecaffeError
        last = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise RecaffeError(f"{' '.join(cmd[2:])} failed (exit status {r.returncode}): {last}")
    return r.stdout + r.stderr


class Regime:
    def __init__(self, name):
        self.name, self.losses, self.accs = name, [], []


def _prepare_data(out, quick):
    from recaffe.tools import demo_data
    per = dict(source_train=20 if quick else 120, source_test=10 if quick else 30,
               target_train=10, target_test=10 if quick else 40)
    lists = {}
    t0 = time.time()
    for key, n in per.items():
        task, split = key.split("_")
        seed = {"source_train": 1, "source_test": 2, "target_train": 3, "target_test": 4}[key]
        lists[key] = demo_data.write_split(os.path.join(out, "images"), task, split, n, seed)
    _say(f"[1/5] generated {sum(per[k] * (10 if k.startswith('source') else 5) for k in per)} images "
         f"({time.time() - t0:.1f} s)")
    dbs = {}
    t0 = time.time()
    for key, list_file in lists.items():
        db = os.path.join(out, f"{key}_lmdb")
        if os.path.exists(db):
            import shutil
            shutil.rmtree(db)
        _tool("convert_imageset", "--quiet", os.path.join(out, "images") + "/", list_file, db)
        dbs[key] = db
    mean = os.path.join(out, "mean.binaryproto")
    _tool("compute_image_mean", dbs["source_train"], mean)
    _say(f"[2/5] built 4 LMDBs with tools/convert_imageset and {os.path.basename(mean)} with "
         f"tools/compute_image_mean ({time.time() - t0:.1f} s)")
    return dbs, mean, per


def _write_nets(out, dbs, mean, task, n_classes, classifier, learn_all, batch):
    from recaffe.models.demo import lmdb_net
    from recaffe.netspec.spec import write
    tag = f"{task}_{'all' if learn_all else 'cls'}"
    train = write(lmdb_net(dbs[f"{task}_train"], mean, True, batch, num_classes=n_classes,
                           classifier_name=classifier, learn_all=learn_all), os.path.join(out, f"{tag}_train.prototxt"))
    test = write(lmdb_net(dbs[f"{task}_test"], mean, False, 50, num_classes=n_classes,
                          classifier_name=classifier, learn_all=learn_all), os.path.join(out, f"{tag}_test.prototxt"))
    return train, test


def _solver(out, name, train, test, base_lr, iters, test_iter):
    from recaffe.models.demo import demo_solver
    from recaffe.netspec.spec import write
    from recaffe.solver.solver import Solver
    path = write(demo_solver(train, test, base_lr, iters, test_iter, os.path.join(out, "snapshots", name),
                             stepsize=max(1, int(iters * 0.7))), os.path.join(out, f"{name}_solver.prototxt"))
    return Solver(path)


def _train(s, regime, iters, n_tests):
    """Step the solver, recording the training loss per iteration and the test accuracy."""
    t0 = time.time()
    checkpoints = {round(iters * k / n_tests) for k in range(1, n_tests + 1)}
    for it in range(iters):
        s.step(1)
        regime.losses.append(float(s.net.blobs["loss"].detach()))
        if it + 1 in checkpoints:
            regime.accs.append((it + 1, _test(s)))
            _say(f"      {regime.name:<16} iter {it + 1:4d}/{iters}  loss {np.mean(regime.losses[-max(1, iters // n_tests):]):.3f}"
                 f"  test acc {regime.accs[-1][1]:.3f}  ({time.time() - t0:.0f} s)")


def _test(s):
    return float(s.test(0)["acc"][0])


def _plot(regimes, source, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in [source] + regimes:
        if r.losses:
            k = 10
            smooth = np.convolve(r.losses, np.ones(k) / k, mode="valid")
            a1.plot(np.arange(len(smooth)) + k, smooth, label=r.name)
        if r.accs:
            a2.plot([i for i, _ in r.accs], [a for _, a in r.accs], marker="o", label=r.name)
    a1.set(title="training loss (10-iteration mean)", xlabel="iteration", ylabel="loss")
    a2.set(title="test accuracy", xlabel="iteration", ylabel="accuracy", ylim=(0, 1))
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    from recaffe.tools._cli import FlagParser
    ap = FlagParser("demo", __doc__.split("\n")[0])
    ap.add_flag("out", os.path.join(REPO, "demo_out"), str, "output folder")
    ap.add_flag("quick", False, bool, "fewer images and iterations (for tests)")
    args = ap.parse_args(argv)
    import logging
    quiet = logging.getLogger("recaffe")   # the solvers' Caffe-format log lines: not in the demo's output
    saved = (quiet.level, quiet.propagate, list(quiet.handlers))
    null = logging.NullHandler()
    quiet.addHandler(null)
    quiet.setLevel(logging.WARNING)
    quiet.propagate = False
    try:
        return _run(args)
    finally:   # leave logging as we found it (the demo also runs inside other programs and tests)
        quiet.removeHandler(null)
        quiet.setLevel(saved[0])
        quiet.propagate = saved[1]


def _run(args):
    import torch
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "snapshots"), exist_ok=True)
    torch.manual_seed(1701)
    np.random.seed(1701)
    t_start = time.time()
    q = args.quick
    dbs, mean, per = _prepare_data(out, q)

    # -- 3. pretrain on the source task ------------------------------------------------------------
    pre_iters = 20 if q else 500
    tr, te = _write_nets(out, dbs, mean, "source", 10, "fc8", True, 20 if q else 50)
    s = _solver(out, "source", tr, te, 0.01, pre_iters, per["source_test"] * 10 // 50)
    source = Regime("source pretrain")
    _say(f"[3/5] pretraining on the 10-class source task ({pre_iters} iterations)")
    _train(s, source, pre_iters, 4)
    pretrained = os.path.join(out, "source_pretrained.caffemodel")
    s.net.save_weights(pretrained)

    # -- 4. target regimes ------------------------------------------------------------------------
    ft_iters = 9 if q else 200
    test_iter = per["target_test"] * 5 // 50
    _say(f"[4/5] target task: 5 classes, {per['target_train'] * 5} training images; {ft_iters} iterations a regime")
    regimes = []
    base = Regime("predict only")
    tr, te = _write_nets(out, dbs, mean, "target", 5, "fc8_target", False, 20)
    s = _solver(out, "predict_only", tr, te, 0.001, 1, test_iter)
    s.load_weights(pretrained)
    base.accs.append((0, _test(s)))
    _say(f"      predict only     test acc {base.accs[0][1]:.3f} (pretrained features, untrained classifier)")
    regimes.append(base)

    cls = Regime("classifier only")
    s = _solver(out, "classifier_only", tr, te, 0.01, ft_iters, test_iter)
    s.load_weights(pretrained)
    _train(s, cls, ft_iters, 3)
    cls_weights = os.path.join(out, "target_classifier_only.caffemodel")
    s.net.save_weights(cls_weights)
    regimes.append(cls)

    tr_all, te_all = _write_nets(out, dbs, mean, "target", 5, "fc8_target", True, 20)
    e2e = Regime("end to end")
    s = _solver(out, "end_to_end", tr_all, te_all, 0.001, ft_iters, test_iter)
    s.load_weights(cls_weights)
    _train(s, e2e, ft_iters, 3)
    final_caffemodel = os.path.join(out, "target_end_to_end.caffemodel")
    final_pth = os.path.join(out, "target_end_to_end.pth")
    s.net.save_weights(final_caffemodel)
    s.net.save_weights(final_pth)
    regimes.append(e2e)

    scratch = Regime("from scratch")
    s = _solver(out, "scratch", tr_all, te_all, 0.01, ft_iters, test_iter)
    _train(s, scratch, ft_iters, 3)
    regimes.append(scratch)

    # -- 5. report ---------------------------------------------------------------------------------
    png = os.path.join(out, "curves.png")
    _plot(regimes[1:], source, png)
    final = {r.name: r.accs[-1][1] for r in regimes}
    _say("[5/5] results on the target task's test set "
         f"({per['target_test'] * 5} images, chance 0.200):")
    _say(f"      {'regime':<18}{'test accuracy':>14}{'vs scratch':>12}")
    for r in regimes:
        d = final[r.name] - final["from scratch"]
        _say(f"      {r.name:<18}{final[r.name]:>14.3f}{d:>+12.3f}")
    best_ft = max(final["classifier only"], final["end to end"])
    verdict = "beats" if best_ft > final["from scratch"] else "does NOT beat"
    _say(f"      fine-tuned from the source {verdict} training from scratch by "
         f"{100 * (best_ft - final['from scratch']):+.1f} points")
    from recaffe.models.demo import deploy_net
    from recaffe.netspec.spec import write
    deploy = write(deploy_net(5, "fc8_target"), os.path.join(out, "target_deploy.prototxt"))
    labels = os.path.join(out, "target_labels.txt")
    with open(labels, "w") as f:
        f.write("".join(f"target class {k}\n" for k in range(5)))
    image = os.path.join(out, "images", "target", "test", "3_0000.png")
    printed = _tool("classify", image, "-model", deploy, "-weights", final_caffemodel, "-mean", mean,
                    "-labels", labels, "-top", "3", "-crop", "32", "-input_scale", str(1.0 / 128))
    _say(f"      tools/classify on {os.path.relpath(image, out)} (true: target class 3):")
    for line in printed.strip().splitlines():
        _say("        " + line)
    _say(f"wrote {png}, {final_caffemodel}, {final_pth} ({time.time() - t_start:.0f} s in all)")
    return 0


def cli(argv=None):
    """Entry point (tools/demo, recaffe-demo): through the error boundary (tools/_cli.py)."""
    from recaffe.tools._cli import run
    return run(main, "demo", argv)


if __name__ == "__main__":
    cli()
