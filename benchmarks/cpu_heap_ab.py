"""Paired A/B of CPU training before and after a code change, on the same steps of a supernet training.

    python benchmarks/cpu_heap_ab.py --old 592490d --supernet runs/supernet_cse_cifar --steps 8 --reps 2

Made for the glibc heap settings (``nas.train.memory.keep_large_blocks_in_heap``, the trim only when memory
is short), whose old code mapped every block over 32 MiB afresh. Each arm copies the supernet directory
(which must hold a mid-epoch checkpoint, so both arms train exactly the same next steps), resumes it with the
settings of ``benchmarks/own_space_full.sh`` for ``--steps`` steps, and is stopped; the old arm runs the code of
``--old`` from a git worktree. Arms alternate (old, new, old, new, ...). Per arm: seconds per step (from the
progress bar, 1-s resolution per step), and the process's page faults, user and system time (from
``/proc/PID/stat``, including its start). The paired difference is step by step within each repetition,
with a 95 % t-interval; steps of one repetition share that repetition's machine state, so the interval is
optimistic. Stop the supernet's own training first: two such trainings at once do not fit 24 GB. Linux only.

``--summarize DIR`` rebuilds the table from the logs an earlier run left in DIR.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, log, machine, publish, run_main  # beside this script
from search_vs_baselines import paired_difference

TRAIN = ["supernet", "train", "--space", "search_spaces/mobilenet_cse_cifar.yaml", "--subset", "0", "--epochs", "5",
         "--batch-size", "128", "--lr", "0.04", "--warmup-epochs", "1", "--threads", "2"]
FILES = ("supernet.json", "checkpoint.pt", "checkpoint-mid-epoch.pt", "metrics.csv")
STEP = re.compile(r"(\d+)/(\d+) \[(\d+):(\d+)<")
STAT = re.compile(r"stat (\d+) (\d+) (\d+)")


def run_arm(name: str, code: Path, supernet: Path, data: Path, steps: int, work: Path) -> Path:
    """Resume a copy of ``supernet`` with the code in ``code`` for ``steps`` steps; the log's path."""
    copy = work / f"sn-{name}"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    for f in FILES:
        shutil.copy2(supernet / f, copy / f)
    log_path = work / f"ab-{name}.log"
    script = (f"import sys, nas; print('code from', nas.__file__, flush=True); from nas.cli import main; "
              f"sys.exit(main({[*TRAIN, '--data', str(data), '--out', str(copy)]!r}))")
    with open(log_path, "w") as out:  # run from the code's own folder, so that its package is imported
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=code, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(code)})
        first: int | None = None
        while proc.poll() is None:
            done = [int(m.group(1)) for m in STEP.finditer(log_path.read_text(errors="replace"))]
            first = done[0] if done and first is None else first
            if first is not None and done[-1] - first >= steps:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                out.write(f"\nstat {fields[7]} {fields[11]} {fields[12]}\n")  # minflt, utime, stime (ticks)
                out.flush()
                proc.terminate()
            time.sleep(1)
    return log_path


def parse(log_path: Path) -> dict[str, Any]:
    text = log_path.read_text(errors="replace").replace("\r", "\n")
    elapsed: dict[int, int] = {}
    for m in STEP.finditer(text[text.rfind("resuming"):]):
        elapsed[int(m.group(1))] = int(m.group(3)) * 60 + int(m.group(4))
    ks = sorted(elapsed)
    stat = STAT.search(text)
    if stat is None or len(ks) < 2:
        raise SystemExit(f"{log_path}: no finished arm in it (steps {ks}, stat line {'found' if stat else 'missing'})")
    ticks = os.sysconf("SC_CLK_TCK")
    return {"code": text.splitlines()[0].removeprefix("code from "), "first_step": ks[0],
            "per_step": {k: elapsed[k] - elapsed[k - 1] for k in ks[1:] if k - 1 in elapsed},
            "page_faults": int(stat.group(1)), "user_s": int(stat.group(2)) / ticks,
            "system_s": int(stat.group(3)) / ticks}


def summarize(work: Path, old: str) -> int:
    arms = {p.stem.removeprefix("ab-"): parse(p) for p in sorted(work.glob("ab-*.log"))}
    reps = sorted({int(n[3:]) for n in arms if n.startswith("old")} & {int(n[3:]) for n in arms if n.startswith("new")})
    if not reps:
        raise SystemExit(f"{work}: needs logs ab-oldN.log and ab-newN.log of the same N")
    rows, a, b = [], [], []
    for r in reps:
        o, n = arms[f"old{r}"], arms[f"new{r}"]
        shared = sorted(set(o["per_step"]) & set(n["per_step"]))
        a += [o["per_step"][k] for k in shared]
        b += [n["per_step"][k] for k in shared]
        for name, arm in (("old", o), ("new", n)):
            times = [arm["per_step"][k] for k in shared]
            rows.append(f"| {name} | {r} | {shared[0]}-{shared[-1]} | {sum(times) / len(times):.1f} | "
                        f"{arm['page_faults'] / 1e6:.1f} | {arm['user_s']:.0f} | {arm['system_s']:.0f} |")
    diff = paired_difference(a, b)
    text = "\n".join([
        f"# CPU training before ({old}) and after the heap settings, on the same supernet steps", "",
        f"Machine: {machine()}. Command: `python benchmarks/cpu_heap_ab.py --old {old} ...` (batch 128, 2 threads, "
        "the full CIFAR-10 supernet run resumed from one mid-epoch checkpoint). Page faults and CPU times are "
        "the whole process's, start included.", "",
        "| code | repetition | steps | s / step | page faults (M) | user s | system s |",
        "|---|---:|---|---:|---:|---:|---:|", *rows, "",
        f"Old minus new, step by step over {diff['n']} pairs: {diff['mean']:.2f} s a step "
        f"(95 % t-interval {diff['ci'][0]:.2f} to {diff['ci'][1]:.2f}; steps of one repetition share its machine "
        f"state, so the interval is optimistic). Means: {sum(a) / len(a):.1f} s old, {sum(b) / len(b):.1f} s new.", ""])
    publish("cpu_heap_ab", text, {"old": old, "arms": arms, "paired": diff, "machine": machine()})
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", default="592490d", help="the git revision before the change (default: %(default)s)")
    ap.add_argument("--supernet", type=Path, default=REPO / "runs" / "supernet_cse_cifar")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "cifar10")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--summarize", type=Path, metavar="DIR", help="only rebuild the table from DIR's logs")
    args = ap.parse_args()
    if args.summarize is not None:
        return summarize(args.summarize, args.old)
    if not (args.supernet / "checkpoint-mid-epoch.pt").is_file():
        raise SystemExit(f"{args.supernet}: no checkpoint-mid-epoch.pt; both arms must resume the same step")
    work = Path(tempfile.mkdtemp(prefix="cpu_heap_ab-"))
    tree = work / "old-code"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), args.old], cwd=REPO, check=True)
    try:
        for r in range(1, args.reps + 1):
            for name, code in ((f"old{r}", tree), (f"new{r}", REPO)):
                log(f"arm {name}: {args.steps} steps with the code in {code}")
                run_arm(name, code, args.supernet, args.data.resolve(), args.steps, work)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)
    log(f"logs in {work}")
    return summarize(work, args.old)


if __name__ == "__main__":
    run_main(main)
