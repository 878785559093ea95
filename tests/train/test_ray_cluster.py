"""The Ray engine on a simulated two-node cluster (Ray's own ``ray.cluster_utils.Cluster``: two raylets,
two object stores on this machine): groups spread over both nodes, and a node lost mid-task is survived
(its task runs again on the other node) with the same ledger as the local engine."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="the Ray engine's tests need the extra: pip install -e '.[ray]'")

from gnnpretrain.train.compare import CompareConfig, run_comparison  # noqa: E402
from _train_helpers import small_root  # noqa: E402

RESULT = ["row", "dataset", "seed", "config_hash", "test_auc_best_valid", "test_auc_last", "best_valid_auc",
          "best_epoch"]


def _results(ledger: Path) -> pd.DataFrame:
    return pd.read_csv(ledger)[RESULT].sort_values(["row", "seed"]).reset_index(drop=True)


@pytest.mark.slow
def test_two_nodes_share_the_groups_and_a_lost_node_is_survived(tmp_path, data_dir):
    from ray.cluster_utils import Cluster

    root = small_root(tmp_path, data_dir)
    common = dict(strategies=["none", "none:gcn"], datasets=["bace"], seeds=[0, 1, 2, 3], epochs=15, num_layer=2,
                  emb_dim=16, batch_size=64, data_root=str(root), cache=str(tmp_path / "cache"),
                  reference_checkpoints=[], fused=True)
    ref = _results(Path(run_comparison(CompareConfig(**common, output=str(tmp_path / "ref")), log=lambda s: None)["ledger"]))

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    second = cluster.add_node(num_cpus=1)
    try:
        cluster.wait_for_nodes()
        lines: list[str] = []
        cfg = CompareConfig(**common, output=str(tmp_path / "ray"), engine="ray", address=cluster.address)
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["report"] = run_comparison(cfg, log=lines.append)
            except BaseException as err:  # noqa: BLE001 (reported by the assertion below)
                outcome["error"] = err

        driver = threading.Thread(target=run)
        driver.start()
        # both nodes take a task (one CPU each); then the second node goes away mid-task
        deadline = time.time() + 120
        while time.time() < deadline and not any(s.startswith("ray: 4 fused group(s)") for s in lines):
            time.sleep(0.1)
        time.sleep(3.0)
        assert not any("] bace" in s for s in lines if s.startswith("ray: [")), "finished before the node was lost"
        cluster.remove_node(second, allow_graceful=False)
        driver.join(300)
        assert not driver.is_alive() and "error" not in outcome, outcome.get("error")
        assert any("2 node(s) with 2 CPUs" in s for s in lines), lines
        got = pd.read_csv(Path(cfg.out_dir) / "ledger.csv")
        assert len(got) == 8 and not got.duplicated(["row", "dataset", "seed"]).any()
        pd.testing.assert_frame_equal(_results(Path(cfg.out_dir) / "ledger.csv"), ref)
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_without_an_address_a_private_instance_even_beside_a_running_cluster(tmp_path):
    """No --address and no RAY_ADDRESS: the run gets an instance of its own, not the cluster another
    program started on this machine (a bare ``ray.init()`` joins that one; it was torn down under a test
    running beside one); ``address="auto"`` is how to join it. In a subprocess: nothing shared with
    other tests' Ray sessions."""
    import os
    import subprocess
    import sys

    code = (
        "import ray\n"
        "from ray.cluster_utils import Cluster\n"
        "from gnnpretrain.raycluster import connect\n"
        "other = Cluster(initialize_head=True, head_node_args={'num_cpus': 1})\n"
        "theirs = other.address\n"
        "try:\n"
        "    with connect(None, num_cpus=1):\n"
        "        mine = ray.get_runtime_context().gcs_address\n"
        "    with connect('auto'):\n"
        "        joined = ray.get_runtime_context().gcs_address\n"
        "finally:\n"
        "    other.shutdown()\n"
        "print(mine, joined, theirs)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                          capture_output=True, text=True, timeout=240,
                          start_new_session=True)  # Ray's helper processes signal their process group on exit
    assert done.returncode == 0, done.stderr[-3000:]
    mine, joined, other = done.stdout.split()[-3:]
    assert mine != other and joined == other
