"""CPU defaults that stay fast on a small, shared machine: how many torch threads, how many processes.

Why this exists: PyTorch starts one intra-op thread per core. That is the fastest choice for a single
run on an idle machine, and the slowest one as soon as anything else is busy: two runs that each
spin two OpenMP threads on two cores, or one run next to a busy neighbour, oversubscribe the cores
and small message-passing ops slow down several-fold (measured here: a BBBP fine-tuning epoch took
42-140 s instead of 16.5 s). No fixed number is right, so the choice is made at start-up from

* the cores this process may run on (``os.sched_getaffinity``, which respects ``taskset``, cgroups
  cpusets and container limits better than ``os.cpu_count``),
* how busy the machine is right now: the cores other processes kept busy over a short sample
  (0.3 s of ``/proc/stat``; the 1-minute load average, ``os.getloadavg``, where that is missing —
  the load average alone lags by a minute, so a run started right after another one of ours would
  see our own finished work as a busy neighbour), and
* how many processes the run itself starts (parallel fine-tuning seeds, DDP ranks),

under one rule: never more busy threads than cores. :func:`plan_threads` is a pure function of those
numbers (tested); :func:`apply_threads` reads them, applies the plan and logs it once.

OpenMP waiting: by default OpenMP worker threads spin for a while after each parallel region, which
burns a core that a neighbour needs. :func:`prefer_passive_openmp` sets ``OMP_WAIT_POLICY=PASSIVE``
(threads sleep instead of spinning) when nothing chose otherwise; it must run before torch is
imported, because OpenMP reads the variable once when it initialises. Scripts call it on their first
lines. This module imports nothing heavy, so importing it does not initialise torch.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Callable

__all__ = ["ThreadPlan", "usable_cores", "machine_load", "plan_threads", "apply_threads",
           "prefer_passive_openmp", "add_threads_argument"]


@dataclass(frozen=True)
class ThreadPlan:
    """What a run will use: ``processes`` parallel processes with ``threads`` torch threads each."""

    threads: int
    processes: int
    cores: int
    busy: float
    requested: int | None = None

    def describe(self) -> str:
        """The one log line (what was chosen, from what, and how to override it)."""
        per = f"{self.threads} torch thread{'s' if self.threads != 1 else ''}"
        procs = f" in each of {self.processes} processes" if self.processes > 1 else ""
        if self.requested is not None:
            return f"cpu: {per}{procs} (--threads)"
        return (f"cpu: {per}{procs} ({self.cores} usable core{'s' if self.cores != 1 else ''}, "
                f"{self.busy:.1f} busy with other work; --threads N overrides)")


def usable_cores() -> int:
    """Cores this process may run on (affinity mask when the OS has one, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def machine_load() -> float:
    """The 1-minute load average (runnable processes), 0.0 where the OS does not report it."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def _cpu_jiffies(cpus: set[int] | None) -> tuple[int, int] | None:
    """``(busy, total)`` jiffies summed over ``cpus`` (all when None) from ``/proc/stat``."""
    try:
        with open("/proc/stat") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    busy = total = 0
    seen = False
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        vals = [int(v) for v in rest.split()[:8]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        busy += sum(vals) - idle
        total += sum(vals)
        seen = True
    return (busy, total) if seen else None


def busy_from_samples(before: tuple[int, int], after: tuple[int, int], cores: int, own_cpu_s: float = 0.0,
                      seconds: float = 0.0) -> float:
    """Cores kept busy by *other* processes between two ``/proc/stat`` samples (pure; tested).

    ``(busy, total)`` jiffies over the usable cores; the fraction busy times ``cores``, less this
    process's own CPU seconds over the interval (``own_cpu_s / seconds``).
    """
    d_busy, d_total = after[0] - before[0], after[1] - before[1]
    if d_total <= 0:
        return 0.0
    busy = cores * d_busy / d_total
    if seconds > 0:
        busy -= own_cpu_s / seconds
    return max(0.0, min(float(cores), busy))


def machine_busy(sample_s: float = 0.3) -> float:
    """Cores busy with other processes now: a short ``/proc/stat`` sample, else the load average."""
    import time

    try:
        cpus: set[int] | None = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = None
    cores = len(cpus) if cpus else usable_cores()
    first = _cpu_jiffies(cpus)
    if first is None:
        return machine_load()
    t0, c0 = time.monotonic(), time.process_time()
    time.sleep(sample_s)
    second = _cpu_jiffies(cpus)
    if second is None:
        return machine_load()
    return busy_from_samples(first, second, cores, time.process_time() - c0, time.monotonic() - t0)


def busy_neighbours(busy: float) -> int:
    """Whole cores taken by other processes (``busy`` rounded from .5: a neighbour at 60% counts)."""
    if not math.isfinite(busy) or busy <= 0:
        return 0
    return int(math.floor(busy + 0.5))


def plan_threads(cores: int, busy: float, processes: int = 1, requested: int | None = None,
                 max_threads: int | None = None) -> ThreadPlan:
    """Torch threads per process so that this run's busy threads fit the cores left free.

    ``free = cores - busy neighbours`` (at least 1); each of ``processes`` processes gets
    ``free // processes`` threads, at least one. ``requested`` (``--threads``) wins; ``max_threads``
    caps the automatic choice.
    """
    cores = max(1, int(cores))
    processes = max(1, int(processes))
    if requested is not None:
        if int(requested) < 1:
            raise ValueError(f"--threads must be >= 1, got {requested}")
        return ThreadPlan(int(requested), processes, cores, float(busy), int(requested))
    free = max(1, cores - busy_neighbours(busy))
    threads = max(1, free // processes)
    if max_threads is not None:
        threads = max(1, min(threads, int(max_threads)))
    return ThreadPlan(threads, processes, cores, float(busy))


def plan_jobs(cores: int, busy: float, tasks: int, requested: int | None = None) -> int:
    """How many single-thread processes to run ``tasks`` independent tasks (fine-tuning seeds) with.

    Seeds in parallel processes with one thread each beat sequential seeds with several threads on a
    small CPU (message passing on small graphs scales poorly across threads), so the count is the
    free cores, at most the number of tasks. ``requested`` (``--jobs``) wins.
    """
    tasks = max(1, int(tasks))
    if requested is not None:
        if int(requested) < 1:
            raise ValueError(f"--jobs must be >= 1, got {requested}")
        return min(int(requested), tasks)
    free = max(1, int(cores) - busy_neighbours(busy))
    return max(1, min(free, tasks))


_applied: ThreadPlan | None = None
_busy_cache: float | None = None


def current_busy() -> float:
    """:func:`machine_busy`, measured once per process (later plans reuse the first sample)."""
    global _busy_cache
    if _busy_cache is None:
        _busy_cache = machine_busy()
    return _busy_cache


def apply_threads(requested: int | None = None, processes: int = 1, log: Callable[[str], None] | None = None,
                  max_threads: int | None = None) -> ThreadPlan:
    """Choose (or take ``requested``) torch's thread count for this process, set it, log it once.

    Returns the plan. The machine is sampled only when no thread count is requested.
    """
    global _applied
    import torch

    busy = 0.0 if requested is not None else current_busy()
    plan = plan_threads(usable_cores(), busy, processes, requested, max_threads)
    torch.set_num_threads(plan.threads)
    if _applied != plan:
        (log or print)(plan.describe())
    _applied = plan
    return plan


def prefer_passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless the user chose a policy).

    Effective only before torch is imported (OpenMP reads ``OMP_WAIT_POLICY`` at initialisation).
    """
    if "torch" in sys.modules:
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def add_threads_argument(parser) -> None:
    """The shared ``--threads`` flag (scripts add it the same way, so help reads the same)."""
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="torch CPU threads per process (default: chosen from the usable cores, the processes "
        "this run starts and the machine's load, never more busy threads than cores)",
    )


# ------------------------------------------------------------------------------------ interrupts
# What a Ctrl-C should tell the user: the innermost piece of long work registers a note (text, or a
# function returning text at the moment of the interrupt) saying what is saved and how to continue;
# ``gnnpretrain.utils.run_cli`` prints it as one line and exits with 130 (the shell's code for SIGINT).
_notes: list = []


class interrupt_note:  # noqa: N801 (used as a context manager, reads like one)
    """``with interrupt_note(lambda: f"... {done} saved ..."):`` — the line a Ctrl-C prints meanwhile."""

    def __init__(self, note) -> None:
        self.note = note

    def __enter__(self) -> "interrupt_note":
        _notes.append(self.note)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        global _pending
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt) and _pending is None:
            _pending = _note_text(self.note)  # the innermost note, read at the moment of the interrupt
        if self.note in _notes:
            _notes.remove(self.note)


_pending: str | None = None


class deferred_interrupt:  # noqa: N801 (used as a context manager, reads like one)
    """``with deferred_interrupt():`` — a Ctrl-C inside the block is held until the block ends, then
    handled as usual (``KeyboardInterrupt``). Why: saving an epoch writes several files and then
    updates what the interrupt note reports; stopped half-way, the files and the one line would
    disagree by an epoch. Outside the main thread (where Python delivers no signal) it does nothing."""

    def __enter__(self) -> "deferred_interrupt":
        import signal
        import threading

        self._caught: list[int] = []
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, lambda signum, frame: self._caught.append(signum))  # noqa: ARG005
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        import signal

        if self._previous is None:
            return
        signal.signal(signal.SIGINT, self._previous)
        if self._caught and exc_type is None:
            if callable(self._previous):
                self._previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt
            elif self._previous == signal.SIG_DFL:
                raise KeyboardInterrupt


def _note_text(note) -> str | None:
    try:
        return (note() if callable(note) else str(note)) or None
    except Exception:  # noqa: BLE001 (a broken note must not hide the interrupt)
        return None


def interrupted_message() -> str:
    """The one line printed on Ctrl-C: the innermost registered note, or that nothing needed saving."""
    global _pending
    if _pending is not None:
        text, _pending = _pending, None
        return f"interrupted: {text}"
    for note in reversed(_notes):
        try:
            text = note() if callable(note) else str(note)
        except Exception:  # noqa: BLE001 (a broken note must not hide the interrupt)
            continue
        if text:
            return f"interrupted: {text}"
    return "interrupted: nothing was lost (no long work was in progress)"


def exit_quietly_on_interrupt() -> None:
    """Until ``run_cli`` takes over, a Ctrl-C (e.g. during imports) ends with one line and code 130."""
    import signal

    def handler(signum, frame):  # noqa: ARG001
        sys.stderr.write("\ninterrupted before any work started; nothing to save\n")
        sys.stderr.flush()
        os._exit(130)

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        pass


def ignore_interrupts_in_worker() -> None:
    """Pool-worker initializer: the parent handles Ctrl-C (one line) and terminates its workers."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
