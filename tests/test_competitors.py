"""Competitor processes: they load what they should, where they should, and are always ended."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import alive, cmdline, wait_gone
from study.paths import ROOT
from study import competitors as C


PARENT = r"""
import signal, sys, time
# Ctrl-C as in a terminal: a job started in the background by a non-interactive shell (as CI
# may start the tests) inherits SIGINT ignored, and Python then keeps it ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
from study.competitors import competitors
# small memory buffers: the test is about process life, not bandwidth
with competitors("cpu", 2, memory_bytes=8 * 2**20) as pool:
    pool.pause(pool.start("memory", 1, cores=None))   # a paused (SIGSTOPped) one must go too
    print(" ".join(map(str, pool.pids())), flush=True)
    time.sleep(60)
"""


def start_parent():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=ROOT, env=env)
    line = p.stdout.readline()
    pids = [int(x) for x in line.split()]
    if len(pids) != 3:
        p.kill()
        pytest.fail(f"parent did not start its competitors: {line!r} {p.stderr.read()}")
    for pid in pids:
        assert alive(pid) and "study.competitors" in cmdline(pid)
    return p, pids


def test_available_kinds_gives_a_reason_for_each_unusable_kind():
    kinds = C.available_kinds()
    assert set(kinds) == set(C.KINDS)
    assert kinds["cpu"] is None and kinds["memory"] is None
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    assert (kinds["gpu"] is None) == cuda
    if not cuda:
        assert "CUDA" in kinds["gpu"]

    class Phone:
        kind, spec = "adb", "adb:X"

    assert all(isinstance(v, str) and v for v in C.available_kinds(Phone()).values())


def test_memory_buffer_is_larger_than_the_last_level_cache():
    llc = C.last_level_cache_bytes()
    b = C.memory_buffer_bytes()
    assert C.MIN_MEMORY_BYTES <= b <= C.MAX_MEMORY_BYTES
    if llc is not None and 2 * llc <= C.MAX_MEMORY_BYTES:
        assert b >= 2 * llc


def test_pool_starts_pins_and_stops(tmp_path):
    cores = sorted(os.sched_getaffinity(0))[-1:]
    with C.competitors("cpu", 2, cores=cores) as pool:
        pids = pool.pids()
        assert len(pids) == 2 and pool.running() == {"cpu": 2, "memory": 0, "gpu": 0}
        for pid in pids:
            assert os.sched_getaffinity(pid) == set(cores)
        more = pool.start("memory", 1, cores=cores)
        assert pool.running()["memory"] == 1
        t0 = pool.cpu_seconds()
        time.sleep(0.5)
        assert pool.cpu_seconds() > t0          # they are working, not sleeping
        pool.stop(more)
        assert pool.running() == {"cpu": 2, "memory": 0, "gpu": 0}
        assert not alive(more[0])
    assert wait_gone(pids, 0.1) == []
    assert pool.running() == {"cpu": 0, "memory": 0, "gpu": 0}


def test_pause_and_resume_turn_load_off_and_on_and_repin():
    cpus = sorted(os.sched_getaffinity(0))
    with C.competitors("cpu", 2, cores=cpus[:1]) as pool:
        pids = pool.pids()
        pool.pause()
        assert pool.running()["cpu"] == 0 and sorted(pool.pids(paused=True)) == sorted(pids)
        time.sleep(0.1)
        t0 = pool.cpu_seconds()
        time.sleep(0.4)
        assert pool.cpu_seconds() == t0                  # stopped: no CPU time at all
        pool.resume(pids[:1], cores=cpus[-1:])
        assert pool.running()["cpu"] == 1 and os.sched_getaffinity(pids[0]) == set(cpus[-1:])
        t1 = pool.cpu_seconds()
        time.sleep(0.4)
        assert pool.cpu_seconds() > t1
        t_stop = time.monotonic()
    assert time.monotonic() - t_stop < C.GRACE_S          # the paused one ended on SIGTERM, no SIGKILL wait
    assert wait_gone(pids, 0.1) == []


def test_zero_competitors_is_an_empty_pool():
    with C.competitors("memory", 0) as pool:
        assert pool.pids() == [] and sum(pool.running().values()) == 0


def test_competitors_end_when_the_block_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with C.competitors("cpu", 2) as pool:
            pids = pool.pids()
            raise RuntimeError("boom")
    assert wait_gone(pids, 0.1) == []


def test_unknown_or_unavailable_kind_is_refused():
    with pytest.raises(ValueError):
        C.CompetitorPool().start("disk", 1)
    pool = C.CompetitorPool()
    pool._reasons = {"cpu": None, "memory": None, "gpu": "no GPU here"}
    with pytest.raises(C.CompetitorError, match="no GPU here"):
        pool.start("gpu", 1)
    assert pool.pids() == []


def test_a_child_failing_before_ready_is_reported_with_its_stderr():
    proc, err = C.spawn_child("study.competitors", ["bogus-kind"])
    problems = C.wait_ready([proc], timeout=30)
    assert proc.pid in problems and "before READY" in problems[proc.pid]
    err.seek(0)
    assert b"invalid choice" in err.read()


def test_child_exits_at_once_if_its_parent_is_already_gone():
    # --parent names a pid that is not our parent: the race guard after prctl fires
    r = subprocess.run([sys.executable, "-m", "study.competitors", "cpu", "--parent", "1"], cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30, capture_output=True)
    assert r.returncode == 3


def test_sigkill_of_the_parent_leaves_no_competitor():
    p, pids = start_parent()
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    assert wait_gone(pids) == [], "competitors survived their SIGKILLed parent"


def test_ctrl_c_in_the_parent_ends_its_competitors():
    p, pids = start_parent()
    os.kill(p.pid, signal.SIGINT)     # KeyboardInterrupt leaves the with block
    p.wait(timeout=20)
    assert p.returncode != 0
    assert wait_gone(pids, 1.0) == []


def test_sigterm_of_the_parent_ends_its_competitors_then_the_parent():
    p, pids = start_parent()
    os.kill(p.pid, signal.SIGTERM)
    p.wait(timeout=20)
    assert p.returncode == -signal.SIGTERM   # default action kept after the clean-up
    assert wait_gone(pids, 1.0) == []


try:
    import torch

    HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    HAS_CUDA = False


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_gpu_competitor_loads_the_gpu_and_stops():
    with C.competitors("gpu", 2) as pool:
        pids = pool.pids()
        assert pool.running()["gpu"] == 2
        t0 = pool.cpu_seconds()
        time.sleep(1.0)
        assert pool.cpu_seconds() > t0
    assert wait_gone(pids, 0.1) == []
