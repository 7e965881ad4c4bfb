"""A two-node Ray cluster on loopback, started as separate processes (`ray start --head`, `ray start
--address`): `nas search --ray ADDRESS` runs evaluations on both nodes and `nas lut build --ray
ADDRESS` measures on the node that has the `nas_lut_device` resource; the cluster is stopped after."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["ray", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def cluster():
    """(address, environment, temp dir): a head with one CPU and a second node with one CPU and the
    measuring resource, each its own `ray start` process tree, in a temporary directory of their own
    (so that no other `ray.init()` on this machine finds them)."""
    pytest.importorskip("ray")
    if not shutil.which("ray"):
        pytest.skip("the ray command is not on PATH")
    temp = Path(tempfile.mkdtemp(prefix="nas-ray-cluster-"))
    # Several nodes on one machine need the flag set (Ray refuses them otherwise), and then the head listens
    # on every interface: token authentication (one shared token for the nodes and the drivers) keeps
    # anyone else out, as on a real cluster.
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1", PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = ["start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0"]
    head += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    try:
        started = _ray(*head, env=env)
        assert started.returncode == 0, started.stderr[-2000:]
        second = ["start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0"]
        second += ["--resources", '{"nas_lut_device": 1}', "--disable-usage-stats"]
        joined = _ray(*second, env=env)
        assert joined.returncode == 0, joined.stderr[-2000:]
        yield address, env, temp
    finally:
        _ray("stop", "--force", env=env)
        shutil.rmtree(temp, ignore_errors=True)


def _nas(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.subprocess
def test_search_and_lut_build_use_both_nodes_of_a_cluster(cluster, tmp_path):
    address, env, _ = cluster
    # Each generation is one Tune experiment whose trial actors start afresh on both nodes, and a node whose
    # actor is ready first takes every trial it can: three generations of 16 evaluations on the default
    # space (about 4 s of work each) outlast the other node's actor start-up even on a loaded machine
    # (8 evaluations of the tiny space, about 1 s, once all went to the head during a full test run).
    search = _nas(
        "search",
        "--device",
        "iphone12-coreml",
        "--budget",
        "params=2.5M",
        "--trials",
        "48",
        "--population",
        "16",
        "--ray",
        address,
        "--out",
        str(tmp_path / "run"),
        "--json",
        env=env,
    )
    assert search.returncode == 0, search.stderr[-3000:]
    result = json.loads(search.stdout)
    assert result["evaluated"] == 48
    nodes = result["ray_nodes"]
    assert len(nodes) == 2 and all(n > 0 for n in nodes.values()), nodes  # both nodes estimated accuracies

    table = tmp_path / "cluster.json"
    build = _nas(
        "lut",
        "build",
        "--device",
        "cluster",
        "--backend",
        "torch",
        "--space",
        "efficientformerv2-tiny",
        "--passes",
        "2",
        "--calibration-samples",
        "2",
        "--ray",
        address,
        "--out",
        str(table),
        env=env,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    provenance = json.loads(table.read_text())["provenance"]
    measured_on = provenance["measured_on"]
    # only the node holding the measuring resource measured (the head has none), every batch there
    assert len(measured_on) == 1, measured_on
    (node,) = measured_on
    assert node in nodes and measured_on[node]["batches"] >= 1 and measured_on[node]["host"]
