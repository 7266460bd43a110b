"""Runs fuzz cases, each in a forked child with a memory cap and a timeout, and judges the outcome.

The parent imports everything once (torch with one thread, so a fork is safe) and forks one child per
case; ``jobs`` children run at a time. A child: its own process group, RLIMIT_DATA = its data size
at the fork + ``mem_cap`` (so no case can grow by more than that; recaffe's memory budget sees the
cap through protos.limits and refuses before allocating), stdout/stderr to /dev/null, a fresh folder
as working directory. It writes its verdict as JSON into a pipe:

  ok          the input was accepted (a mutation can be harmless)
  clean       a RecaffeError with a one-line message (the CLIs print it as one line, exit 2)
  multiline   a RecaffeError whose message spans lines (a defect: the CLI line would be cut)
  traceback   any other exception (what the CLI boundary would report as unforeseen: a defect)
  harness     the case could not be set up (a defect of this suite, not of recaffe)

and the parent adds:

  crash       the child died by a signal (SIGSEGV, SIGBUS, SIGABRT...) or exited without a verdict
  hang        still running after ``timeout`` seconds (the process group is killed)

Peak memory is the child's ru_maxrss (wait4), which includes the pages it shares with the parent.
"""
import json
import os
import resource
import select
import shutil
import signal
import time
import traceback

FAILURES = ("multiline", "traceback", "harness", "crash", "hang")


def _vm_data():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(make, folder, wfd, mem_cap):
    """In the forked child: set up the limits, make and run the case, write the verdict, exit."""
    try:
        os.setpgid(0, 0)
        if mem_cap:
            resource.setrlimit(resource.RLIMIT_DATA, (_vm_data() + mem_cap, resource.RLIM_INFINITY))
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.makedirs(folder, exist_ok=True)
        os.chdir(folder)
        import torch
        torch.set_num_threads(1)
        from recaffe.protos.errors import RecaffeError
        verdict = {"category": "harness", "message": ""}
        try:
            desc, fn = make(folder)
            verdict["desc"] = desc
        except BaseException as e:  # noqa: BLE001
            verdict["message"] = _exc_text(e)
            fn = None
        if fn is not None:
            try:
                out = fn()
                verdict.update(category="ok", message=str(out)[:300])
            except RecaffeError as e:
                msg = str(e)
                verdict.update(category="clean" if "\n" not in msg.strip() and msg.strip() else "multiline",
                               message=msg[:1000], error=type(e).__name__)
            except BaseException as e:  # noqa: BLE001 - judging every escape is the point
                verdict.update(category="traceback", message=_exc_text(e), error=type(e).__name__)
        data = json.dumps(verdict).encode()
        os.write(wfd, data[:60000])
    finally:
        os._exit(0)


def _exc_text(e):
    frames = traceback.extract_tb(e.__traceback__)[-3:]
    where = " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{type(e).__name__}: {str(e)[:600]} [{where}]"


class Running:
    def __init__(self, index, pid, rfd, start, expect):
        self.index, self.pid, self.rfd, self.start, self.expect = index, pid, rfd, start, expect
        self.data = b""
        self.killed = False


def run_cases(cases, root, jobs=1, timeout=20.0, mem_cap=2 << 30, progress=None):
    """``cases``: iterable of (index, make, expect) where ``make(folder)`` -> (description, function) runs in
    the child and ``expect`` is None or "clean". Returns the list of per-case records."""
    records, running, todo = [], {}, iter(cases)
    exhausted = False
    while running or not exhausted:
        while not exhausted and len(running) < jobs:
            item = next(todo, None)
            if item is None:
                exhausted = True
                break
            index, make, expect = item
            folder = os.path.join(root, f"case{index}")
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(rfd)
                _child(make, folder, wfd, mem_cap)
            os.close(wfd)
            running[pid] = Running(index, pid, rfd, time.monotonic(), expect)
        fds = [r.rfd for r in running.values()]
        ready, _, _ = select.select(fds, [], [], 0.02) if fds else ([], [], [])
        for r in running.values():
            if r.rfd in ready:
                chunk = os.read(r.rfd, 65536)
                r.data += chunk
        now = time.monotonic()
        for r in running.values():
            if not r.killed and now - r.start > timeout:
                r.killed = True
                try:
                    os.killpg(r.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        while running:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                break
            r = running.pop(pid, None)
            if r is None:
                continue
            try:
                while True:
                    chunk = os.read(r.rfd, 65536)
                    if not chunk:
                        break
                    r.data += chunk
            finally:
                os.close(r.rfd)
            try:
                os.killpg(pid, signal.SIGKILL)      # leftovers of the case (loader workers)
            except (ProcessLookupError, PermissionError):
                pass
            records.append(_record(r, status, usage, time.monotonic() - r.start))
            shutil.rmtree(os.path.join(root, f"case{r.index}"), ignore_errors=True)
            if progress:
                progress(records[-1], len(records))
    records.sort(key=lambda rec: rec["index"])
    return records


def _record(r, status, usage, seconds):
    rec = {"index": r.index, "seconds": round(seconds, 3), "peak_rss": usage.ru_maxrss * 1024}
    verdict = None
    if r.data:
        try:
            verdict = json.loads(r.data.decode("utf-8", "replace"))
        except ValueError:
            verdict = None
    if r.killed:
        rec.update(category="hang", message=f"killed after {seconds:.1f} s", desc=(verdict or {}).get("desc", ""))
    elif os.WIFSIGNALED(status):
        rec.update(category="crash", message=f"signal {signal.Signals(os.WTERMSIG(status)).name}",
                   desc=(verdict or {}).get("desc", ""))
    elif verdict is None:
        rec.update(category="crash", message=f"exit status {os.WEXITSTATUS(status)} without a verdict")
    else:
        rec.update(verdict)
    if r.expect and rec["category"] == "ok":
        rec["category"], rec["message"] = "traceback", f"expected a clean refusal, was accepted: {rec['message']}"
    return rec


def summary(records):
    """Counts by category and by kind, the slowest case and the peak memory."""
    counts = {}
    kinds = {}
    for rec in records:
        counts[rec["category"]] = counts.get(rec["category"], 0) + 1
        kind = rec.get("kind", "?")
        kinds.setdefault(kind, {})
        kinds[kind][rec["category"]] = kinds[kind].get(rec["category"], 0) + 1
    slow = max(records, key=lambda r: r["seconds"]) if records else None
    peak = max(records, key=lambda r: r["peak_rss"]) if records else None
    return {"cases": len(records), "counts": counts, "by_kind": kinds,
            "failures": sum(counts.get(c, 0) for c in FAILURES),
            "max_seconds": slow["seconds"] if slow else 0, "slowest": (slow or {}).get("desc", ""),
            "peak_rss": peak["peak_rss"] if peak else 0, "peak_case": (peak or {}).get("desc", "")}
