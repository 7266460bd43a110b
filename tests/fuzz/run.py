"""The bad-input suite's runner: the resource-limit cases of issue #14, then N seeded random cases, each
in a capped child (tests/fuzz/harness.py). Prints a summary and writes every case's record as JSON.

    python tests/fuzz/run.py --fuzz-cases 10000 --seed 1 --jobs 2 --out fuzz.json     # the long run
    python tests/fuzz/run.py --fuzz-cases 300                                          # the CI slice
    python tests/fuzz/run.py --seed 1 --only 1234 --keep                               # replay one case

Exit status 0 when no case is a traceback, crash, hang or multi-line error, 1 otherwise.
"""
import argparse
import json
import os
import sys
import tempfile
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):   # no thread pool before fork
    os.environ.setdefault(_var, "1")
os.environ.setdefault("RECAFFE_DATA_BACKEND", "thread")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from fuzz import artifacts, cases, harness, limit_cases  # noqa: E402
from fuzz.mutate import new_rng  # noqa: E402


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fuzz-cases", type=int, default=300, help="random cases (after the limit cases)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1, help="children at a time")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds before a case counts as a hang")
    p.add_argument("--mem-cap", type=float, default=1.5, help="GiB a case may grow by (RLIMIT_DATA)")
    p.add_argument("--kinds", default="", help="comma-separated kinds (default: all, weighted)")
    p.add_argument("--only", default="", help="comma-separated case indices to run (replay)")
    p.add_argument("--no-limits", action="store_true", help="skip the resource-limit cases")
    p.add_argument("--no-corpus", action="store_true", help="seeds from the repository only")
    p.add_argument("--out", default="", help="write the records and the summary here (JSON)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (inputs of failing cases)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every failing case as it ends")
    return p.parse_args(argv)


def plan(args, ctx):
    """(index, kind, make, expect) of every case: negative indices for the limit cases."""
    kinds = [k for k in args.kinds.split(",") if k] or list(cases.KINDS)
    weights = [cases.KINDS[k] for k in kinds]
    only = {int(i) for i in args.only.split(",") if i}
    out = []
    if not args.no_limits:
        for i, name in enumerate(limit_cases.NAMES):
            index = -1 - i
            if not only or index in only:
                out.append((index, "limit", (lambda f, n=name: limit_cases.make(n, f, ctx.art)), "clean"))
    for index in range(args.fuzz_cases):
        rng = new_rng(args.seed, index)
        kind = rng.choices(kinds, weights)[0]
        if only and index not in only:
            continue
        out.append((index, kind, (lambda f, k=kind, r=rng: cases.make_case(k, r, ctx, f)), None))
    return out


def main(argv=None):
    args = parse(argv)
    work = tempfile.mkdtemp(prefix="recaffe-fuzz-")
    t0 = time.time()
    import contextlib
    import io
    with contextlib.redirect_stderr(io.StringIO()):     # the solver's log lines
        art = artifacts.build(os.path.join(work, "artifacts"))
    ctx = cases.Context(art, with_corpus=not args.no_corpus)
    todo = plan(args, ctx)
    kinds = {i: k for i, k, _, _ in todo}
    print(f"fuzz: {len(todo)} cases ({args.fuzz_cases} random, seed {args.seed}; {len(ctx.nets)} net seeds, "
          f"{len(ctx.solvers)} solver seeds), {args.jobs} at a time, timeout {args.timeout:g} s, "
          f"memory cap +{args.mem_cap:g} GiB", flush=True)

    def progress(rec, done):
        rec["kind"] = kinds[rec["index"]]
        if rec["category"] in harness.FAILURES and args.verbose:
            print(f"  case {rec['index']} [{rec['kind']}] {rec['category']}: {rec.get('desc', '')}\n"
                  f"      {rec.get('message', '')[:400]}", flush=True)
        if done % 500 == 0:
            print(f"  {done}/{len(todo)} done, {time.time() - t0:.0f} s", flush=True)
    records = harness.run_cases([(i, make, expect) for i, _, make, expect in todo], os.path.join(work, "cases"),
                                jobs=args.jobs, timeout=args.timeout, mem_cap=int(args.mem_cap * (1 << 30)),
                                progress=progress)
    for rec in records:
        rec["kind"] = kinds[rec["index"]]
    summ = harness.summary(records)
    summ.update(seed=args.seed, random_cases=args.fuzz_cases, jobs=args.jobs, timeout=args.timeout,
                mem_cap_gib=args.mem_cap, wall_seconds=round(time.time() - t0, 1),
                net_seeds=len(ctx.nets), solver_seeds=len(ctx.solvers),
                corpus=cases.CORPUS if not args.no_corpus and os.path.isdir(cases.CORPUS) else None)
    print(f"fuzz: {summ['cases']} cases in {summ['wall_seconds']} s: " +
          ", ".join(f"{k} {v}" for k, v in sorted(summ["counts"].items())) +
          f"; slowest {summ['max_seconds']} s; peak RSS {summ['peak_rss'] / (1 << 20):.0f} MiB")
    for rec in records:
        if rec["category"] in harness.FAILURES:
            print(f"  FAIL case {rec['index']} [{rec['kind']}] {rec['category']}: {rec.get('desc', '')}\n"
                  f"      {rec.get('message', '')[:400]}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summ, "records": records}, f, indent=1)
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept: {work}")
    return 1 if summ["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
