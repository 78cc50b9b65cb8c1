"""Running fuzz cases in a child process, bounded in time and memory.

:func:`run_campaign` (the parent) starts a child (``python -m tests.fuzz.runner``) that runs
cases one after another: case ``i`` is target ``i % len(targets)``, mutated from ``(seed, i)``.
The child limits its own address space (``RLIMIT_AS``) and each case's time (``SIGALRM``) and
checks its peak RSS after each case; the parent kills a child that stops reporting (a hang in
C code no alarm can interrupt) and starts another after the case that killed it.

A finding is any outcome but a clean return or a :class:`~monarch.errors.MonarchError`: another
exception, a hang, a memory blow-up, a dead child. Each one's input is saved in the crash
folder with the traceback and the command that replays it.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from monarch.errors import MonarchError
from tests.fuzz.mutate import case_rng
from tests.fuzz.samples import load_samples, read_tree, write_tree
from tests.fuzz.targets import target

ROOT = Path(__file__).resolve().parents[2]
AS_HEADROOM = 1024 * 1024 * 1024
"""Address space a case may map beyond what the child had after loading (then MemoryError)."""


@dataclass(frozen=True)
class Finding:
    """A case that did not end in a clean return or a monarch error."""

    target: str
    case: int
    kind: str
    """``exception``, ``hang``, ``memory`` or ``died``."""
    detail: str
    saved: str = ""
    """The folder holding the input, its traceback and how to replay it."""


@dataclass
class Report:
    """What a campaign did: cases per target, their outcomes, and the findings."""

    seed: int
    cases: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def summary(self) -> str:
        """A table: cases, inputs still valid, each monarch error, findings; per target."""
        lines = [f"seed {self.seed}: {self.total} cases in {self.seconds:.0f} s, "
                 f"{len(self.findings)} crash(es) found"]
        for name in sorted(self.cases):
            outcome = self.outcomes.get(name, Counter())
            refused = ", ".join(f"{k} {v}" for k, v in outcome.most_common() if k != "accepted")
            crashes = sum(1 for f in self.findings if f.target == name)
            lines.append(f"  {name:<14} {self.cases[name]:>8} cases  {outcome['accepted']:>6} "
                         f"still valid  crashes {crashes}  ({refused})")
        for finding in self.findings:
            lines.append(f"  CRASH {finding.target} case {finding.case} ({finding.kind}): "
                         f"{finding.detail.strip().splitlines()[-1] if finding.detail else ''}"
                         f"{'  saved in ' + finding.saved if finding.saved else ''}")
        return "\n".join(lines)


def run_campaign(
    samples: Path,
    targets: Sequence[str],
    *,
    seed: int,
    cases: int,
    seconds: float,
    crashes: Path,
    case_timeout: float = 10.0,
    memory_mb: int = 256,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Run up to ``cases`` cases (stopping after ``seconds``) over ``targets``."""
    started = time.monotonic()
    deadline = time.time() + seconds
    report = Report(seed)
    first = 0
    while first < cases and time.time() < deadline:
        args = {"samples": str(samples), "targets": list(targets), "seed": seed, "first": first,
                "cases": cases - first, "deadline": deadline, "crashes": str(crashes),
                "case_timeout": case_timeout, "memory_mb": memory_mb}
        first = _one_child(args, targets, report, case_timeout, progress)
    report.seconds = time.monotonic() - started
    return report


def _one_child(args: dict[str, Any], targets: Sequence[str], report: Report,
               case_timeout: float, progress: Callable[[Report], None] | None) -> int:
    """Run a child until it ends; return the case to resume from (past the end if done)."""
    with tempfile.TemporaryFile("w+") as errors:
        try:
            return _watch(args, targets, report, case_timeout=case_timeout, progress=progress,
                          errors=errors)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{_tail(errors)}") from None


def _tail(errors: Any) -> str:
    errors.seek(0)
    text: str = errors.read()[-3000:]
    return text


def _watch(args: dict[str, Any], targets: Sequence[str], report: Report, *, case_timeout: float,
           progress: Callable[[Report], None] | None, errors: Any) -> int:
    current: int | None = None
    finished = False
    last_progress = time.monotonic()
    pending = b""
    with subprocess.Popen(
        [sys.executable, "-m", "tests.fuzz.runner", json.dumps(args)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL,
    ) as child, selectors.DefaultSelector() as selector:
        assert child.stdout is not None
        fd = child.stdout.fileno()
        selector.register(fd, selectors.EVENT_READ)
        while True:
            if not selector.select(timeout=case_timeout * 3 + 10):
                child.kill()
                child.wait()
                if current is None:
                    raise RuntimeError("the fuzz child started no case")
                _found(args, report, current, "hang",
                       "the case stopped answering (killed by the watchdog)")
                return current + 1
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                mark, _, rest = line.decode().partition(" ")
                if mark == ">":
                    current = int(rest)
                    report.cases[targets[current % len(targets)]] += 1
                elif mark == "<" and current is not None:
                    name = targets[current % len(targets)]
                    report.outcomes.setdefault(name, Counter())[rest] += 1
                elif mark == "!":
                    report.findings.append(Finding(**json.loads(rest)))
                elif mark == "=":
                    finished = True
            if progress is not None and time.monotonic() - last_progress > 10:
                last_progress = time.monotonic()
                progress(report)
        code = child.wait()
    if finished and code == 0:
        return int(args["first"]) + int(args["cases"])
    if current is None:
        raise RuntimeError(f"the fuzz child failed before its first case (exit {code})")
    how = f"signal {-code}" if code < 0 else f"exit status {code}"
    _found(args, report, current, "died", f"{_tail(errors)}\nthe child process died ({how})")
    return current + 1


def _found(args: dict[str, Any], report: Report, case: int, kind: str, detail: str) -> None:
    """Record a case that killed its child, keeping its input (made again: it is
    deterministic) where ``--replay`` finds it."""
    targets = args["targets"]
    chosen = target(targets[case % len(targets)])
    pool = load_samples(Path(args["samples"]), chosen.kind)
    rng = case_rng(args["seed"], case)
    data = chosen.mutate(rng, rng.choice(pool), pool)
    folder = Path(args["crashes"]) / f"{chosen.name}-seed{args['seed']}-case{case}"
    save_input(folder, chosen.name, data, detail, seed=args["seed"], case=case)
    report.findings.append(Finding(chosen.name, case, kind, detail, str(folder)))


# ------------------------------------------------------------------------------ the child side


class CaseTimeout(BaseException):
    """Raised by the alarm inside a case that runs too long (a BaseException, so that no
    ``except Exception`` in the code under test swallows it)."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise CaseTimeout


def _peak_rss() -> int:
    """This process's own peak RSS (VmHWM). Not ``getrusage``'s ``ru_maxrss``: Linux carries the
    peak of the process that forked and exec'd this one into it (a long pytest worker's), which
    would hide every growth below that."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def scratch_root() -> str | None:
    """Where cases write their files: memory (``/dev/shm``) where there is one, since a case
    writes and removes dozens of files and a disk makes that the slowest part of a case."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def run_case(target: Any, data: Any, scratch: Path) -> tuple[str, str | None, str]:
    """Run one case: ``(outcome, finding kind or None, traceback)``."""
    try:
        target.run(data, scratch)
    except MonarchError as exc:
        return type(exc).__name__, None, ""
    except CaseTimeout:
        return "hang", "hang", traceback.format_exc()
    except MemoryError:
        return "memory", "memory", traceback.format_exc()
    except Exception:
        return "crash", "exception", traceback.format_exc()
    return "accepted", None, ""


def save_input(folder: Path, target: str, data: Any, detail: str, *, seed: int, case: int) -> None:
    """Keep a finding's input where ``scripts/fuzz --replay FOLDER`` runs it again."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, dict):
        shutil.rmtree(folder / "input", ignore_errors=True)
        write_tree(folder / "input", data)
    else:
        (folder / "input").write_bytes(data)
    (folder / "case.json").write_text(json.dumps({"target": target, "seed": seed, "case": case}))
    (folder / "error.txt").write_text(f"{detail}\nreplay: scripts/fuzz --replay {folder}\n")


def _child(args: dict[str, Any]) -> None:
    targets = [target(name) for name in args["targets"]]
    samples = {t.name: load_samples(Path(args["samples"]), t.kind) for t in targets}
    for name, found in samples.items():
        if not found:
            raise SystemExit(f"no samples for fuzz target {name} in {args['samples']}")
    limit = _address_space() + AS_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _alarm)
    memory_bound = _peak_rss() + args["memory_mb"] * 1024 * 1024
    seed, crashes = args["seed"], Path(args["crashes"])
    work = Path(tempfile.mkdtemp(prefix="monarch-fuzz-", dir=scratch_root()))
    out = sys.stdout
    try:
        for case in range(args["first"], args["first"] + args["cases"]):
            if time.time() > args["deadline"]:
                break
            chosen = targets[case % len(targets)]
            out.write(f"> {case}\n")
            out.flush()
            rng = case_rng(seed, case)
            pool = samples[chosen.name]
            data = chosen.mutate(rng, rng.choice(pool), pool)
            scratch = work / str(case)
            scratch.mkdir()
            signal.setitimer(signal.ITIMER_REAL, args["case_timeout"])
            try:
                outcome, kind, detail = run_case(chosen, data, scratch)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                shutil.rmtree(scratch, ignore_errors=True)
            if kind is None and _peak_rss() > memory_bound:
                outcome, kind = "memory", "memory"
                detail = f"peak RSS reached {_peak_rss() // 2**20} MiB"
                memory_bound = _peak_rss() + args["memory_mb"] * 1024 * 1024
            out.write(f"< {outcome}\n")
            if kind is not None:
                folder = crashes / f"{chosen.name}-seed{seed}-case{case}"
                save_input(folder, chosen.name, data, detail, seed=seed, case=case)
                finding = Finding(chosen.name, case, kind, detail, str(folder))
                out.write("! " + json.dumps(finding.__dict__) + "\n")
                out.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.write("=\n")
    out.flush()


def replay(folder: Path) -> tuple[str, str]:
    """Run a saved finding (or corpus entry) again in this process: its outcome (``accepted``,
    the monarch error's class name, or ``crash``...) and the traceback of a crash ("" if none)."""
    case = json.loads((folder / "case.json").read_text())
    chosen = target(case["target"])
    source = folder / "input"
    data = read_tree(source) if source.is_dir() else source.read_bytes()
    with tempfile.TemporaryDirectory(prefix="monarch-fuzz-replay-") as scratch:
        outcome, _, detail = run_case(chosen, data, Path(scratch))
    return outcome, detail


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    _child(json.loads(sys.argv[1]))
