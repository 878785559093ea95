"""The Ray engine: fine-tuning members spread over a Ray cluster (``compare.py --engine ray``).

Not a third way to compute. Every Ray task runs one *work item* through the engines that exist — a
fused group (:func:`gnnpretrain.train.fused.run_members`) or one separate seed
(:func:`gnnpretrain.train.separate.run_seed`) — so a seed's result is the one the local engine
computes at the same torch thread count (tested equal, ``tests/train/test_ray_engine.py``).

What moves between machines, and how (no shared file system is needed):

* **tasks** are loaded (featurized) once, by the driver, and put into Ray's object store as plain
  graphs; workers need neither RDKit nor the raw data;
* **checkpoints** travel once as bytes through the object store; a worker writes each into its own
  cache (``<cache>/ray/checkpoints/<sha256><suffix>``, checked by hash) and fine-tunes from there;
* **results** come back to the driver as records; only the driver writes seed files and ledger
  lines (atomic writes, one writer), exactly where the local engine writes them.

A worker keeps its in-flight state — a fused group's periodic state file, seed files it finished —
in a scratch folder of its own cache (``<cache>/ray/runs/<hash of the driver's output folder>``), so a
task that Ray runs again on the same node continues from there instead of from epoch 0.

Failures: a worker process or node lost mid-task is retried by Ray (``max_retries``); a Python error
inside a task stops the run with that error's own line; a cluster lost or a task that died on every
try is one :class:`~gnnpretrain.raycluster.RayClusterError` line. Ctrl-C or SIGTERM cancels every task
in flight; finished seeds are kept (their files and ledger lines are written as each item returns).
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from gnnpretrain.raycluster import RayClusterError, connect, require_ray
from gnnpretrain.train.run.config import RESULT_KEYS, FinetuneConfig, config_mismatch, recorded_config
from gnnpretrain.train.run.data import load_task
from gnnpretrain.train.run.paths import output_dir, seed_path
from gnnpretrain.train.run.records import load_finished
from gnnpretrain.train.tasks import Task
from gnnpretrain.utils import atomic_write, atomic_write_json, sha256_file

__all__ = ["run_members_ray", "portable_task", "local_checkpoint", "node_checkpoint", "DEFAULT_MAX_RETRIES"]

#: How often Ray runs a task again after its worker process or node died (Ray's own ``max_retries``).
DEFAULT_MAX_RETRIES = 3
#: Result keys a worker cannot see as the driver does: a CSV data set's content hash (the worker has
#: the driver's graphs, not the file). Every other result key must come back unchanged.
_DRIVER_ONLY_KEYS = ("dataset_sha256",)


def portable_task(task: Task) -> Task:
    """``task`` with its graphs as a plain list (no dataset class, file path or cache behind it), for
    the object store: what a worker unpickles is the driver's graphs and split, nothing else."""
    # clone: a graph read from an in-memory dataset holds views into the dataset's whole flat tensors,
    # and a pickled view carries its whole storage; a clone owns just its own rows
    graphs = [task.dataset[i].clone() for i in range(len(task.dataset))]
    return dataclasses.replace(task, dataset=graphs)


def _task_key(cfg: FinetuneConfig) -> tuple:
    return (cfg.domain, cfg.dataset, cfg.split, cfg.split_seed, cfg.featurizer, cfg.data_root, cfg.cache,
            cfg.smiles_column, tuple(cfg.target_columns or ()), cfg.task_type)


def _scratch_name(cfg: FinetuneConfig, driver: str) -> str:
    """A worker's folder for one output folder of one driver machine: stable, so a task run again
    (a retry, or the same command after Ctrl-C) finds the state its group saved there."""
    return hashlib.sha256(f"{driver}\0{Path(output_dir(cfg)).resolve()}".encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------ the worker side
def local_checkpoint(sha: str, suffix: str, data: Any) -> str:
    """The checkpoint with this SHA-256 in this node's cache (``<cache>/ray/checkpoints/<sha><suffix>``),
    written from ``data`` (its bytes, or an object-store reference to them) when absent or damaged."""
    from gnnpretrain.paths import cache_dir

    path = cache_dir() / "ray" / "checkpoints" / f"{sha}{suffix}"
    if not (path.is_file() and sha256_file(str(path)) == sha):
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = data if isinstance(data, (bytes, bytearray)) else require_ray().get(data)
        atomic_write(path, lambda fh: fh.write(blob))
    return str(path)


def node_checkpoint(path: str, sha: str, data: Any, seen: dict[str, str] | None = None) -> str:
    """``path`` if this node has the file with that hash there, else :func:`local_checkpoint`'s copy
    (``seen`` caches this node's hashes by path across calls)."""
    seen = {} if seen is None else seen
    if path not in seen:
        seen[path] = sha256_file(path) if Path(path).is_file() else ""
    return path if seen[path] == sha else local_checkpoint(sha, Path(path).suffix, data)


def _run_item(task: Task, item: list[tuple[FinetuneConfig, int]], where: list[tuple[str, str | None]],
              blobs: dict[str, Any], fused: bool, fuse_max: int | None, threads: int) -> list[dict]:
    """One Ray task: the members of ``item`` fine-tuned on this node (a fused group or separate seeds)
    into this node's scratch folders; returns their records. ``where``: per member its scratch folder
    name and its checkpoint's SHA-256; ``blobs``: those checkpoints' bytes in the object store."""
    import torch

    from gnnpretrain.paths import cache_dir

    torch.set_num_threads(int(threads))
    root = cache_dir() / "ray" / "runs"
    seen: dict[str, str] = {}  # checkpoint path on this node -> its hash
    local = []
    for (cfg, seed), (scratch, sha) in zip(item, where):
        changes: dict[str, Any] = {"output": str(root / scratch), "progress": False, "jobs": 1}
        if sha is not None:  # not on this node, or another file under that name: the driver's bytes
            changes["input_model_file"] = node_checkpoint(cfg.input_model_file, sha, blobs[sha], seen)
        local.append((dataclasses.replace(cfg, **changes), seed))
    if fused:
        from gnnpretrain.train.fused import run_members

        records = run_members(local, fuse_max=fuse_max, task=task, jobs=1)
    else:
        from gnnpretrain.train.separate import run_seed

        records = [run_seed(cfg, seed, task) for cfg, seed in local]
    for cfg, seed in local:  # the driver writes the real files; the scratch copies served only a retry
        seed_path(cfg, seed).unlink(missing_ok=True)
    return records


# ------------------------------------------------------------------------------------ the driver side
def _work_items(members: list[tuple[FinetuneConfig, int]], todo: list[int], fused: bool, pieces: int,
                fuse_max: int | None) -> list[list[int]]:
    if not fused:
        return [[i] for i in todo]
    from gnnpretrain.train.fused import work_items

    return work_items(members, todo, pieces, fuse_max)


def _describe(members: list[tuple[FinetuneConfig, int]], item: list[int]) -> str:
    cfg = members[item[0]][0]
    seeds = ",".join(str(members[i][1]) for i in item)
    return f"{cfg.dataset} {cfg.gnn_type} seed(s) {seeds}"


def _task_error(ray: Any, err: BaseException, what: str, tries: int) -> BaseException:
    """The one-line error a failed Ray task becomes on the driver."""
    from gnnpretrain.errors import UserError

    if isinstance(err, ray.exceptions.RayTaskError):
        cause = getattr(err, "cause", None)
        if isinstance(cause, (UserError, ValueError, FileNotFoundError, FloatingPointError)):
            return cause  # the library's own message, as a local run prints it
        return err.as_instanceof_cause()
    if isinstance(err, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                        ray.exceptions.OutOfMemoryError, ray.exceptions.TaskCancelledError)):
        return RayClusterError(f"{what}: its Ray worker was lost on each of {tries} tries ({type(err).__name__}); "
                               "the seeds finished so far are kept and the same command continues with the rest")
    return RayClusterError(f"{what}: the Ray cluster failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                           "the seeds finished so far are kept and the same command continues with the rest")


def run_members_ray(
    members: Sequence[tuple[FinetuneConfig, int]],
    *,
    fused: bool = True,
    fuse_max: int | None = None,
    threads: int = 1,
    address: str | None = None,
    task: Task | None = None,
    note: Callable[[str], None] | None = None,
    on_record: Callable[[int, dict], None] | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> list[dict]:
    """Run (or resume) every ``(config, seed)`` member on a Ray cluster; records in member order.

    Finished seed files are checked first, as every engine does (a mismatch fails before any work).
    The rest becomes work items — fused groups cut into at least as many pieces as the cluster has
    task slots (``CPUs // threads``; on CUDA one GPU per task), or one item per seed when
    ``fused=False`` — each one Ray task with ``num_cpus=threads`` and ``max_retries``. As each item
    returns, the driver checks every record's result options against its own configuration, writes
    the seed files atomically and calls ``on_record(member_index, record)`` (where a comparison
    appends its ledger line). ``address``: ``None`` = ``RAY_ADDRESS`` or a Ray instance of this
    machine; ``"auto"`` / ``"HOST:PORT"`` = a running cluster (:func:`gnnpretrain.raycluster.connect`).
    """
    from gnnpretrain.train.workers import sigterm_raises

    ray = require_ray()
    note = note or (lambda s: None)
    members = list(members)
    if int(threads) < 1:
        raise ValueError(f"threads per Ray task must be >= 1, got {threads}")
    results: dict[int, dict] = {}
    recorded: dict[int, dict] = {}
    todo: list[int] = []
    for i, (cfg, seed) in enumerate(members):
        recorded[i] = recorded_config(cfg)
        done = load_finished(cfg, seed, recorded[i])
        if done is not None:
            results[i] = {**done, "skipped": True}
        else:
            todo.append(i)
    if not todo:
        return [results[i] for i in range(len(members))]

    # everything a worker needs, prepared here before the cluster is touched (errors are local lines)
    tasks: dict[tuple, Task] = {}
    for i in todo:
        key = _task_key(members[i][0])
        if key not in tasks:
            tasks[key] = task if task is not None else load_task(members[i][0])
    checkpoints = {recorded[i]["input_model_sha256"]: members[i][0].input_model_file
                   for i in todo if members[i][0].input_model_file}
    driver = socket.gethostname()
    device = str(members[todo[0]][0].device)
    on_cuda = device.startswith("cuda")

    with connect(address) as resources, sigterm_raises():
        slots = int(resources.get("GPU", 0)) if on_cuda else int(resources.get("CPU", 1) // int(threads))
        if slots < 1:
            raise RayClusterError(
                f"the Ray cluster has {resources.get('GPU' if on_cuda else 'CPU', 0):g} "
                f"{'GPUs' if on_cuda else 'CPUs'}: not enough for one task of "
                f"{'one GPU' if on_cuda else f'{threads} thread(s)'}; add nodes or lower --threads")
        items = _work_items(members, todo, fused, slots, fuse_max)
        task_refs = {key: ray.put(portable_task(t)) for key, t in tasks.items()}
        blobs = {sha: ray.put(Path(path).read_bytes()) for sha, path in checkpoints.items()}
        remote = ray.remote(_run_item).options(
            num_cpus=int(threads), num_gpus=1 if on_cuda else 0, max_retries=int(max_retries),
            retry_exceptions=False, name="gnnpretrain.finetune")
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        gpus = f", {resources['GPU']:g} GPUs" if resources.get("GPU") else ""
        note(f"ray: {len(items)} {'fused group(s)' if fused else 'seed(s)'} as Ray tasks of {threads} CPU thread(s)"
             f"{' and one GPU' if on_cuda else ''}, on {nodes} node(s) with {resources.get('CPU', 0):g} CPUs{gpus}")
        pending: dict[Any, int] = {}
        started = time.time()
        for k, item in enumerate(items):
            key = _task_key(members[item[0]][0])
            where = [(_scratch_name(members[i][0], driver), recorded[i]["input_model_sha256"]) for i in item]
            needed = {sha: blobs[sha] for _, sha in where if sha is not None}
            pending[remote.remote(task_refs[key], [members[i] for i in item], where, needed, fused, fuse_max,
                                  threads)] = k
        finished_items = 0
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    k = pending.pop(ref)
                    item = items[k]
                    try:
                        records = ray.get(ref)
                    except ray.exceptions.RayError as err:
                        raise _task_error(ray, err, _describe(members, item), int(max_retries) + 1) from None
                    for i, rec in zip(item, records):
                        results[i] = _accept(members[i], recorded[i], rec)
                        if on_record is not None:
                            on_record(i, results[i])
                    finished_items += 1
                    note(f"ray: [{finished_items}/{len(items)}] {_describe(members, item)} done "
                         f"({time.time() - started:.0f} s since the start)")
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    return [results[i] for i in range(len(members))]


def _accept(member: tuple[FinetuneConfig, int], recorded: dict, record: dict) -> dict:
    """A worker's record as the driver's: its result options checked against the driver's, the
    driver's paths in its config, written to the driver's seed file."""
    cfg, seed = member
    ours = {k: v for k, v in recorded.items() if k not in _DRIVER_ONLY_KEYS}
    theirs = {k: record.get("config", {}).get(k) for k in RESULT_KEYS if k not in _DRIVER_ONLY_KEYS}
    diffs = config_mismatch(theirs, ours) if int(record.get("seed", seed)) == int(seed) else [f"seed: {record.get('seed')}"]
    if diffs:
        raise RayClusterError(
            f"{cfg.dataset} seed {seed}: a Ray worker computed it with other options ({'; '.join(diffs)}) — "
            "e.g. a node without native bf16 ran --amp in fp32; give the cluster nodes of one kind or drop --amp")
    rec = {k: v for k, v in record.items() if k != "skipped"}
    rec["config"] = recorded
    atomic_write_json(seed_path(cfg, seed), rec)
    return {**rec, "skipped": False}
