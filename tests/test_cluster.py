"""emofuse on a real Dask cluster: `dask scheduler` and `dask worker` processes started from a
directory outside the repository, as on cluster nodes, and the ways a cluster fails."""

import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import tomllib
from pathlib import Path

import pytest

from features.errors import WorkerError
from features.parallel import DaskPool, end_process_group, local_cluster
from features.runner import run_features
from features.store import FeatureStore, store_path
from test_runner import N_CLIPS, assert_same_store, corpus, reference  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[1]
distributed = pytest.importorskip("distributed")


def node_environment(with_emofuse=True) -> tuple[dict, tuple]:
    """Environment and interpreter command of cluster processes: emofuse importable through
    PYTHONPATH, or absent (Python without its site hooks, so no installed emofuse, seeing this
    environment's packages through PYTHONPATH)."""
    site = sysconfig.get_paths()
    path = str(REPO) if with_emofuse else os.pathsep.join(dict.fromkeys([site["purelib"], site["platlib"]]))
    python = (sys.executable,) if with_emofuse else (sys.executable, "-S")
    return {**os.environ, "PYTHONPATH": path}, python


def features_cli(corpus_dir, cache, address, timeout):
    """``python -m features extract ... --scheduler address`` run from outside the repository."""
    command = [sys.executable, "-m", "features", "extract", "--dataset", "synthetic", "--data-dir", str(corpus_dir),
               "--cache-dir", str(cache), "--scheduler", address, "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    done = subprocess.run(command, cwd=cache.parent, env=env, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - start


@pytest.mark.slow
def test_scheduler_and_worker_processes_give_the_local_store(corpus, reference, tmp_path):  # noqa: F811
    env, python = node_environment()
    with local_cluster(tmp_path / "nodes", env=env, python=python) as (address, _):
        done, _ = features_cli(corpus, tmp_path / "cache", address, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{N_CLIPS} done now" in done.stdout and "wall x 2 cores" in done.stdout
    assert_same_store(store_path("synthetic", tmp_path / "cache"), reference)


@pytest.mark.slow
def test_workers_without_emofuse_stop_the_run_with_the_remedy(corpus, tmp_path):  # noqa: F811
    env, python = node_environment(with_emofuse=False)
    with local_cluster(tmp_path / "nodes", n_workers=1, env=env, python=python) as (address, _):
        done, seconds = features_cli(corpus, tmp_path / "cache", address, timeout=120)
    assert done.returncode == 2
    assert "cannot import emofuse" in done.stderr and "No module named 'features'" in done.stderr
    assert "pip install" in done.stderr
    assert seconds < 60


@pytest.mark.slow
def test_lost_workers_stop_the_run_and_finished_clips_stay(corpus, tmp_path):  # noqa: F811
    """Kill every worker after the first clip is written: the run stops within its timeout, and
    the clips written before are in the store."""
    cache = tmp_path / "cache"
    env, python = node_environment()
    with local_cluster(tmp_path / "nodes", env=env, python=python) as (address, processes):
        def kill_after_first_shard():
            deadline = time.monotonic() + 120
            while not list((cache / "synthetic").glob("features.parts-*/shard-*.h5")):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
            for worker in processes[1:]:
                end_process_group(worker, signal.SIGKILL)

        killer = threading.Thread(target=kill_after_first_shard)
        killer.start()
        start = time.monotonic()
        with pytest.raises(WorkerError, match="every Dask worker left"):
            run_features("synthetic", corpus, cache_dir=cache, scheduler=address, batch_size=1, progress=False,
                         cluster_timeout=5)
        killer.join()
    assert time.monotonic() - start < 90
    with FeatureStore.open(store_path("synthetic", cache)) as store:
        assert 1 <= len(store) < N_CLIPS


def test_workers_that_cannot_read_the_corpus_are_named(tmp_path):
    readable = tmp_path / "here.wav"
    readable.write_bytes(b"RIFF")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        assert DaskPool(client, [str(readable)], timeout=10).cores == 1
        with pytest.raises(WorkerError, match=r"cannot read .*elsewhere\.wav.*shared filesystem"):
            DaskPool(client, [str(readable), str(tmp_path / "elsewhere.wav")], timeout=10)


def test_no_scheduler_is_a_quick_clear_error(tmp_path):
    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(WorkerError, match="cannot reach the Dask scheduler.*dask scheduler"):
        DaskPool(f"tcp://127.0.0.1:{closed_port}", timeout=3)
    assert time.monotonic() - start < 30


def test_package_pins_are_requirements_pins():
    """pyproject.toml installs exactly what requirements.txt pins (the tests' packages as an extra)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    pinned = {line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert declared == pinned
    assert all(re.fullmatch(r"[\w.-]+==[\w.]+", pin) for pin in pinned)
