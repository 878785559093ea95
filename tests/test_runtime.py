"""CPU defaults (thread and process choice), the help formatter and the Ctrl-C line."""

from __future__ import annotations

import argparse
import re

import pytest

from gnnpretrain import runtime
from gnnpretrain.cli_help import DefaultsHelpFormatter
from gnnpretrain.runtime import busy_from_samples, busy_neighbours, plan_jobs, plan_threads


@pytest.mark.parametrize(
    "cores, busy, processes, expected",
    [
        (2, 0.0, 1, 2),    # idle 2-core machine, one run: both cores
        (2, 0.3, 1, 2),    # a neighbour at 30% does not take a core
        (2, 0.8, 1, 1),    # one busy neighbour: one thread
        (2, 1.0, 1, 1),
        (2, 2.0, 1, 1),    # fully busy: still one thread (never zero)
        (2, 7.5, 1, 1),
        (2, 0.0, 2, 1),    # two processes of ours: one thread each
        (8, 0.0, 3, 2),    # 8 // 3
        (8, 2.4, 2, 3),    # 6 free cores over 2 processes
        (16, 0.0, 1, 16),
        (1, 0.0, 4, 1),
    ],
)
def test_threads_never_exceed_free_cores(cores, busy, processes, expected):
    plan = plan_threads(cores, busy, processes)
    assert plan.threads == expected
    free = max(1, cores - busy_neighbours(busy))
    assert plan.threads * processes <= max(free, processes)  # never more busy threads than free cores


def test_requested_threads_win_and_are_validated():
    assert plan_threads(2, 5.0, 1, requested=4).threads == 4
    assert "--threads" in plan_threads(2, 5.0, 1, requested=4).describe()
    with pytest.raises(ValueError, match="--threads must be >= 1"):
        plan_threads(2, 0.0, 1, requested=0)
    assert plan_threads(32, 0.0, 1, max_threads=8).threads == 8


def test_plan_jobs_uses_free_cores_up_to_the_task_count():
    assert plan_jobs(2, 0.0, 3) == 2      # idle: two seeds at a time
    assert plan_jobs(2, 1.0, 3) == 1      # one busy neighbour: one process
    assert plan_jobs(8, 0.0, 3) == 3      # never more processes than seeds
    assert plan_jobs(2, 0.0, 1) == 1
    assert plan_jobs(2, 9.0, 10) == 1
    assert plan_jobs(2, 0.0, 10, requested=4) == 4
    with pytest.raises(ValueError, match="--jobs"):
        plan_jobs(2, 0.0, 3, requested=0)


def test_busy_from_proc_stat_samples_excludes_own_cpu():
    # 2 cores, 200 jiffies elapsed in total, 100 of them busy -> 1 core busy
    assert busy_from_samples((1000, 5000), (1100, 5200), cores=2) == pytest.approx(1.0)
    # ... of which this process used 0.5 s over 1 s -> 0.5 core busy with other work
    assert busy_from_samples((1000, 5000), (1100, 5200), cores=2, own_cpu_s=0.5, seconds=1.0) == pytest.approx(0.5)
    assert busy_from_samples((1000, 5000), (1000, 5000), cores=2) == 0.0  # no time passed
    assert busy_from_samples((0, 0), (400, 400), cores=2) == 2.0


def test_machine_busy_reads_this_machine():
    busy = runtime.machine_busy(0.05)
    assert 0.0 <= busy <= max(runtime.usable_cores(), runtime.machine_load() + 1)
    plan = runtime.apply_threads(log=lambda _m: None)
    assert 1 <= plan.threads <= runtime.usable_cores()


def test_describe_is_one_line_naming_the_override():
    line = plan_threads(2, 1.2, 2).describe()
    assert "\n" not in line and "--threads N overrides" in line and "2 usable cores" in line


def test_interrupt_note_innermost_wins():
    assert "nothing was lost" in runtime.interrupted_message()
    with runtime.interrupt_note("outer saved"):
        with runtime.interrupt_note(lambda: "inner saved 3 chunks"):
            assert runtime.interrupted_message() == "interrupted: inner saved 3 chunks"
        assert runtime.interrupted_message() == "interrupted: outer saved"


def test_help_shows_every_default_once():
    p = argparse.ArgumentParser(formatter_class=DefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--csize", type=int, default=None, help="ring width (default: 3)")
    p.add_argument("--flag", action="store_true", help="a flag")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    text = p.format_help()
    assert re.search(r"--epochs EPOCHS\s+\(default: 100\)", text)
    assert "(default: 3)" in text and "(default: None)" not in text
    assert "learning rate (default: 0.001)" in text
    assert "(default: False)" not in text
    assert text.count("default") == 3


def test_deferred_interrupt_holds_ctrl_c_until_the_block_is_done():
    """A Ctrl-C inside the block lets the block finish, then arrives as KeyboardInterrupt; none: no raise.
    In a subprocess: the signal goes to a process of its own, never to a test worker."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import os, signal\n"
        "from gnnpretrain.runtime import deferred_interrupt\n"
        "done = []\n"
        "try:\n"
        "    with deferred_interrupt():\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        done.append('after the signal')\n"
        "except KeyboardInterrupt:\n"
        "    done.append('interrupted')\n"
        "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
        "with deferred_interrupt():\n"
        "    done.append('quiet')\n"
        "print(done)\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root,
                          env={**__import__("os").environ, "PYTHONPATH": root}, start_new_session=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['after the signal', 'interrupted', 'quiet']"
