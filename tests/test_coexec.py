"""The co-execution engine (study.coexec): splitting arithmetic, time accounting, the
worker process's life cycle, and outputs equal to the single-processor model at every
granularity (CPU core-group pair here; CPU+GPU where a CUDA GPU exists)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from study import coexec as C
from study.models.zoo import Bottleneck, YoloDetector

TOL = 1e-3
CUDA = torch.cuda.is_available()


def two_groups():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPU cores for two disjoint core groups")
    half = len(cpus) // 2
    return cpus[:half], cpus[half:]


class Net(nn.Module):
    """Dense, depthwise (reflect-padded), grouped convolutions, a bottleneck with a
    projection and linear layers on 2-D and 3-D inputs."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 12, 3, padding=1)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12, padding_mode="reflect")
        self.gc = nn.Conv2d(12, 8, 1, groups=4, bias=False)
        self.block = Bottleneck(8, 4, stride=2)
        self.tok = nn.Linear(16, 10)
        self.fc = nn.Linear(10, 7)

    def forward(self, x):
        y = torch.relu(self.c1(x))
        y = self.gc(torch.relu(self.dw(y)))
        y = self.block(y)                                   # [1, 16, H/2, W/2]
        t = self.tok(y.flatten(2).transpose(1, 2))          # linear on a 3-D input: [1, HW/4, 10]
        return self.fc(t.mean(1))                           # linear on a 2-D input: [1, 7]


def net():
    m = Net().eval()
    from study.models.zoo import _calibrate_norm_stats

    _calibrate_norm_stats(m, (1, 3, 16, 16), 0)
    return m


# --------------------------------------------------------------------------- pure arithmetic
@pytest.mark.parametrize("layer", [
    nn.Conv2d(6, 10, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.Conv2d(6, 9, 3, stride=2, groups=3),
    nn.Conv2d(6, 10, 5, padding=2, padding_mode="reflect"), nn.Conv2d(6, 10, 1, bias=False), nn.Linear(6, 11),
])
@pytest.mark.parametrize("r", [0.0, 0.1, 0.5, 0.77, 1.0])
def test_split_parts_merge_to_the_layer_output(layer, r):
    torch.manual_seed(1)
    layer = layer.eval()
    x = torch.randn(1, 6, 9, 9) if isinstance(layer, nn.Conv2d) else torch.randn(1, 4, 6)
    with torch.no_grad():
        ref = layer(x)
        y = C.split_reference(layer, x, r)
    assert y.shape == ref.shape
    assert C.rel_error(y, ref) < 1e-6


def test_units_and_rounding():
    assert C.split_units(nn.Conv2d(8, 16, 3)) == (16, 1, None)
    assert C.split_units(nn.Conv2d(8, 8, 3, groups=8)) == (8, 1, 1)
    assert C.split_units(nn.Conv2d(8, 16, 3, groups=4)) == (4, 4, 2)
    assert C.split_units(nn.Linear(5, 3)) == (3, 1, None)
    with pytest.raises(TypeError):
        C.split_units(nn.ReLU())
    assert [C.units_b(10, r) for r in (0, 0.04, 0.05, 0.5, 0.96, 1)] == [0, 0, 1, 5, 10, 10]
    assert C.frame_assignment(4, 0.5) == ["a", "b", "a", "b"]
    assert C.frame_assignment(8, 0.25).count("b") == 2
    assert C.frame_assignment(5, 0.0) == ["a"] * 5
    assert C.frame_assignment(3, 1.0) == ["b"] * 3


def test_clone_tree_and_wrappers_leave_the_model_alone():
    m = net()
    rt = C.ModelRuntime(key="k", pair=None, model_a=m, model_b=m, x_a=None, x_b=None)
    w = C.wrap_split(m, rt)
    names = [n for n, mod in w.named_modules() if isinstance(mod, C._SplitLayer)]
    assert set(names) == set(C.splittable_layers(m))
    assert not any(isinstance(mod, C._SplitLayer) for mod in m.modules())
    assert w.c1.layer is m.c1  # parameters shared, not copied
    assert C.branch_points(m) == ["block.downsample"]
    assert C.branch_points(nn.Sequential(nn.Conv2d(3, 3, 1))) == []
    assert C.branch_points(YoloDetector()) == ["heads.0"]


def test_decompose_steps_partitions_the_wall_time():
    ms = 1_000_000
    steps = [
        # a faster: both 2 ms, a waits 1 ms, 0.5 ms of sync, worker copy 0.5 ms inside the section
        C.Step("split", "l1", 4, 4, t_in=1 * ms, ca=2 * ms, cb=3 * ms, par=4 * ms, inner=ms // 2, t_out=0,
               merge=ms // 2, wall=6 * ms),
        # all on b: a idles for the whole section
        C.Step("split", "l2", 0, 8, t_in=ms, ca=0, cb=2 * ms, par=2 * ms, inner=0, t_out=ms, merge=0, wall=4 * ms),
    ]
    d = C.decompose_steps(steps, 15 * ms)
    parts = sum(d[f"t_{p}_ms"] for p in C.PHASES)
    assert parts == pytest.approx(15.0)
    assert d["t_solo_ms"] == pytest.approx(5.0)
    assert d["t_parallel_ms"] == pytest.approx(2.0)
    assert d["t_imbalance_ms"] == pytest.approx(1.0 + 2.0)
    assert d["t_sync_ms"] == pytest.approx(0.5)
    assert d["t_transfer_ms"] == pytest.approx(1 + 0.5 + 1 + 1)
    assert d["t_merge_ms"] == pytest.approx(0.5)
    assert d["compute_a_ms"] == pytest.approx(5 + 2)
    assert d["compute_b_ms"] == pytest.approx(5)
    assert d["t_other_ms"] == pytest.approx(0.5)  # step 1: 6 ms wall, 5.5 ms accounted for
    assert d["overhead_ms"] == pytest.approx(0.5 + 3.5 + 0.5 + 0.5)
    assert d["idle_b"] == pytest.approx(1 - 5 / 15)


def test_intervals_and_frame_decomposition():
    assert C.union([(5, 7), (0, 2), (1, 3)]) == [(0, 3), (5, 7)]
    assert C.length([(0, 2), (1, 3)]) == 3
    assert C.overlap([(0, 4)], [(2, 6), (3, 5)]) == 2
    a = [(0, 10), (10, 20)]
    b = [(2, 12)]
    copies = [(0, 2), (12, 14), (22, 24)]
    d = C.decompose_frames(a, b, copies, 0, 25, [10, 10, 14], 2, 1)
    assert sum(d[f"t_{p}_ms"] for p in C.PHASES) == pytest.approx(25e-6)
    assert d["t_parallel_ms"] == pytest.approx(10e-6)
    assert d["t_imbalance_ms"] == pytest.approx(10e-6)
    assert d["t_transfer_ms"] == pytest.approx(2e-6)   # (22, 24): the only copy while nobody computes
    assert d["t_sync_ms"] == pytest.approx(3e-6)
    assert d["frames"] == 3 and d["frames_b"] == 1
    assert d["frame_latency_max_ms"] == pytest.approx(14e-6)


# --------------------------------------------------------------------------- the CPU pair
@pytest.fixture(scope="module")
def cpu_pair():
    ga, gb = two_groups()
    with C.CpuWorkerPair(ga, gb, timeout_s=120) as pair:
        yield pair


def test_worker_is_pinned_to_its_core_group(cpu_pair):
    assert cpu_pair.worker_info["cores"] == cpu_pair.cores_b
    assert cpu_pair.worker_info["threads"] == len(cpu_pair.cores_b)
    assert cpu_pair.ping_ns() > 0


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 1.0, "per-layer"])
def test_operator_level_equals_single_processor(cpu_pair, ratio):
    m = net()
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        ref = m(x)
    rt = cpu_pair.load("net", m, x)
    r = {n: (i % 4) / 3 for i, n in enumerate(C.splittable_layers(m))} if ratio == "per-layer" else ratio
    y, bd = cpu_pair.infer(rt, "operator", r)
    assert C.rel_error(y, ref) < TOL
    rn = r if isinstance(r, dict) else {n: r for n in C.splittable_layers(m)}
    assert bd["n_steps"] == sum(1 for n, l in C.splittable_layers(m).items() if C.units_b(C.split_units(l)[0], rn[n]))
    assert sum(bd[f"t_{p}_ms"] for p in C.PHASES) == pytest.approx(bd["engine_wall_ms"], rel=1e-6)
    assert all(bd[f"t_{p}_ms"] >= 0 for p in C.PHASES)
    if ratio in (0.3, 0.5, 1.0):
        assert bd["compute_b_ms"] > 0 and bd["t_transfer_ms"] > 0


def test_branch_level_equals_single_processor(cpu_pair):
    for name, m, x in (("net", net(), torch.rand(1, 3, 16, 16)),
                       ("yolo", _yolo(), torch.rand(1, 3, 64, 64))):
        with torch.inference_mode():
            ref = m(x)
        rt = cpu_pair.load(name, m, x)
        y, bd = cpu_pair.infer(rt, "branch")
        assert C.rel_error(y, ref) < TOL, name
        assert bd["n_steps"] == len(rt.branch_points) >= 1
        assert bd["compute_b_ms"] > 0


def _yolo():
    from study.models.zoo import build

    return build("yolo_det", 0)


def test_frame_level_equals_single_processor(cpu_pair):
    m = net()
    frames = [torch.rand(1, 3, 16, 16) for _ in range(5)]
    with torch.inference_mode():
        refs = [m(f) for f in frames]
    rt = cpu_pair.load("net", m, frames[0], frames)
    for share in (0.5, 0.2, 1.0):
        assign = C.frame_assignment(5, share)
        outs, bd = cpu_pair.frame_burst(rt, assign)
        assert max(C.rel_error(y, r) for y, r in zip(outs, refs)) < TOL
        assert bd["frames_b"] == assign.count("b")
        assert bd["throughput_fps"] > 0
        assert sum(bd[f"t_{p}_ms"] for p in C.PHASES) == pytest.approx(bd["engine_wall_ms"], rel=1e-6)


def test_sessions_record_their_breakdown(cpu_pair):
    m = net()
    x = torch.rand(1, 3, 16, 16)
    rt = cpu_pair.load("net", m, x, [x, x])
    s = C.CoexecSession(cpu_pair, rt, "operator", 0.5)
    s.run()
    assert s.last["n_steps"] > 0
    f = C.FrameSession(cpu_pair, rt, ["a", "b"])
    f.run()
    assert f.last["frames"] == 2
    with pytest.raises(ValueError):
        C.CoexecSession(cpu_pair, rt, "subgraph")


def test_profile_predicts_ratios(cpu_pair):
    m = net()
    x = torch.rand(1, 3, 16, 16)
    rt = cpu_pair.load("net", m, x)
    recs = C.profile_layers(cpu_pair, rt, runs=2)
    r, per_layer, rows = C.predict_ratios(recs)
    assert 0 < r < 1
    assert set(per_layer) == set(C.splittable_layers(m))
    assert all(row["t_a_ms"] > 0 and row["t_b_ms"] > 0 for row in rows)
    assert not rt.profiling


def test_worker_errors_are_raised_and_the_pair_recovers(cpu_pair):
    with pytest.raises(C.CoexecError, match="worker failed"):
        cpu_pair._call(("split", "no-such-model", "x", 0, 1, (1, 1)))
    m = net()
    x = torch.rand(1, 3, 16, 16)
    rt = cpu_pair.load("net", m, x)
    cpu_pair._send(("ping",))  # an abandoned request: its reply must not be taken for the next one
    y, _ = cpu_pair.infer(rt, "operator", 0.5)
    with torch.inference_mode():
        assert C.rel_error(y, m(x)) < TOL


def test_worker_ends_with_the_context_even_on_error():
    ga, gb = two_groups()
    with pytest.raises(RuntimeError, match="boom"):
        with C.CpuWorkerPair(ga, gb) as pair:
            proc = pair.proc
            names = [s.name for s in pair._shms]
            pair._ensure_capacity(1000)
            names = [s.name for s in pair._shms]
            raise RuntimeError("boom")
    proc.join(10)
    assert not proc.is_alive()
    assert all(not os.path.exists(f"/dev/shm/{n.lstrip('/')}") for n in names)


def test_overlapping_groups_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        C.CpuWorkerPair([0], [0])


def test_worker_dies_when_its_parent_is_killed(tmp_path):
    ga, gb = two_groups()
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from study import coexec as C
        if __name__ == "__main__":
            pair = C.CpuWorkerPair({ga!r}, {gb!r})
            pair.start()
            print(pair.proc.pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    f = tmp_path / "killme.py"
    f.write_text(script)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, str(f)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == -signal.SIGKILL, r.stderr
    pid = int(r.stdout.split()[0])
    deadline = time.time() + 10
    while time.time() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), "worker survived its SIGKILLed parent"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


# --------------------------------------------------------------------------- CPU + GPU
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_pair_every_granularity_equals_single_processor():
    from study.models.zoo import build

    with C.CudaPair(cpu_threads=min(4, os.cpu_count() or 1)) as pair:
        for name, m, x in (("net", net(), torch.rand(1, 3, 16, 16)),
                           ("resnet50", build("resnet50", 0), torch.rand(1, 3, 64, 64)),
                           ("yolo", _yolo(), torch.rand(1, 3, 64, 64))):
            frames = [torch.rand(x.shape) for _ in range(3)]
            with torch.inference_mode():
                ref = m(x)
                refs = [m(f) for f in frames]
            rt = pair.load(name, m, x, frames)
            for r in (0.0, 0.25, 0.5, 1.0, {n: 0.3 for n in rt.layers}):
                y, bd = pair.infer(rt, "operator", r)
                assert C.rel_error(y, ref) < TOL, (name, r)
                assert all(bd[f"t_{p}_ms"] >= 0 for p in C.PHASES)
                if r not in (0.0,):
                    assert bd["t_transfer_ms"] > 0
            if rt.branch_model is not None:
                y, bd = pair.infer(rt, "branch")
                assert C.rel_error(y, ref) < TOL, name
            outs, bd = pair.frame_burst(rt, ["a", "b", "a"])
            assert max(C.rel_error(pair.to_host(y), r) for y, r in zip(outs, refs)) < TOL
            s = C.SingleSession(rt.model_a, rt.x_a, pair.threads_a, cuda=True)
            assert C.rel_error(s.output(), ref) < TOL
            recs = C.profile_layers(pair, rt, runs=1)
            assert all(rec["ca"] > 0 for rec in recs if rec["pass"] == "a")
    assert torch.backends.cudnn.allow_tf32 is True  # restored
