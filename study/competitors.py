"""Competitor processes: CPU-bound, memory-bandwidth-bound and GPU-bound load, each
its own OS process, started and always ended by a context manager.

    with competitors("cpu", 3, cores=[0]) as pool:      # three busy processes pinned to core 0
        ...                                            # measure under contention
    # here every competitor is gone

Kinds (``KINDS``):

* ``cpu``: a tight loop of small single-threaded float32 matrix products (128x128,
  the working set stays in the private caches): keeps one core's arithmetic units busy;
* ``memory``: streaming copies between two buffers each at least twice the last-level
  cache (``memory_buffer_bytes``): keeps the memory bus busy with little arithmetic;
* ``gpu``: CUDA matrix products (PyTorch, float32 4096x4096) in a loop, a few per
  synchronisation: keeps the GPU busy. Only where PyTorch sees a CUDA GPU; otherwise
  ``available_kinds`` gives the reason and ``start`` refuses.

Each competitor is ``python -m study.competitors <kind> ...``, started with
``subprocess.Popen`` in a process group of its own (a Ctrl-C at a terminal reaches the
measuring process only, which then ends them in order), pinned to ``cores`` when given.
It is always ended:

* leaving the ``with`` block, normally, on an exception or on Ctrl-C (``KeyboardInterrupt``):
  ``CompetitorPool.__exit__`` -> ``stop_all()``: SIGTERM to the competitor's process
  group, SIGKILL after a grace period, then reaped;
* the measuring process ending: an ``atexit`` hook, and SIGTERM/SIGHUP handlers (installed
  while a pool is open, in the main thread, chained to the previous handler) stop every
  open pool first;
* the measuring process killed outright (SIGKILL, the OOM killer): the child asked the
  kernel for ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` as its first act, and checks that its
  parent is still the one that started it (closing the race of a parent killed before
  the ``prctl``); its loop also watches ``getppid()`` as a second line of defence (and
  the only one off Linux). Note: the kernel sends the parent-death signal when the
  *thread* that started the child ends, so start pools from a thread that outlives them
  (the main thread, as notebooks and the CLI do).

A competitor reports ``READY`` on its stdout once its buffers (or CUDA context) exist;
``start`` waits for it, so load is on when ``start`` returns. ``pause``/``resume``
(SIGSTOP/SIGCONT, re-pinning on resume) keep competitors on stand-by between
measurements: a GPU competitor takes seconds to start (PyTorch, CUDA context), a resume
milliseconds. ``running()`` counts live competitors that are not paused.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

KINDS = ("cpu", "memory", "gpu")

PR_SET_PDEATHSIG = 1
GRACE_S = 2.0            # SIGTERM -> SIGKILL
READY_TIMEOUT_S = 120.0  # a GPU competitor imports torch and creates a CUDA context
CPU_MATRIX = 128         # cpu kind: side of the float32 matrices (3 x 64 KiB, in L2)
GPU_MATRIX = 4096        # gpu kind: side of the float32 matrices
GPU_BURST = 4            # gpu kind: matrix products per synchronisation
MIN_MEMORY_BYTES = 64 * 2**20
MAX_MEMORY_BYTES = 512 * 2**20


class CompetitorError(RuntimeError):
    """A competitor that cannot start (kind unavailable, child failed before READY)."""


# --------------------------------------------------------------------------- availability
def available_kinds(device=None, gpu_model=None) -> dict[str, str | None]:
    """Each kind -> ``None`` if it can run here, else why not. These competitors are processes
    of this host: on a phone (adb) the phone's own competitors are asked instead
    (``AdbCompetitorPool.reasons()``; ``gpu_model``: the model its GPU competitor runs)."""
    kind = getattr(device, "kind", "local")
    if kind == "adb" and hasattr(device, "competitor_pool"):
        return device.competitor_pool(gpu_model=gpu_model).reasons()
    if kind != "local":
        why = f"competitor processes run on this host, not on the {kind} device {getattr(device, 'spec', '')}".strip()
        return {k: why for k in KINDS}
    out: dict[str, str | None] = {"cpu": None, "memory": None}
    if device is not None:
        out["gpu"] = device.processor("gpu").backend_reason("cuda")
    else:
        from study.devices.local import torch_cuda_status

        out["gpu"] = torch_cuda_status()[0]
    if out["gpu"] is not None:
        out["gpu"] = f"GPU competitors need PyTorch CUDA: {out['gpu']}"
    return out


def last_level_cache_bytes() -> int | None:
    """Size of the largest cache level of CPU 0 (sysfs), or None where unreadable."""
    best = None
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = os.listdir(base)
    except OSError:
        return None
    for e in entries:
        if not e.startswith("index"):
            continue
        try:
            with open(f"{base}/{e}/size") as f:
                text = f.read().strip()
        except OSError:
            continue
        mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
        try:
            size = int(text.rstrip("KMGkmg")) * mult
        except ValueError:
            continue
        best = size if best is None else max(best, size)
    return best


def memory_buffer_bytes() -> int:
    """Bytes of each of the memory competitor's two buffers: twice the last-level cache
    (so the copy streams four times the cache), within [64 MiB, 512 MiB]."""
    llc = last_level_cache_bytes() or 32 * 2**20
    return int(min(MAX_MEMORY_BYTES, max(MIN_MEMORY_BYTES, 2 * llc)))


# --------------------------------------------------------------------------- the child side
def die_with_parent(expected_ppid: int | None) -> None:
    """In a child: ask for SIGKILL when the parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if expected_ppid is not None and os.getppid() != expected_ppid:
        os._exit(3)  # the parent died before the prctl took effect


class _Watchdog:
    """Cheap parent check for the loops (every ``every`` seconds)."""

    def __init__(self, ppid: int | None, every: float = 0.25):
        self.ppid, self.every, self.next = ppid, every, time.monotonic() + every

    def check(self) -> None:
        now = time.monotonic()
        if now >= self.next:
            self.next = now + self.every
            if self.ppid is not None and os.getppid() != self.ppid:
                os._exit(4)


def _ready() -> None:
    sys.stdout.write(f"READY {os.getpid()}\n")
    sys.stdout.flush()
    # nothing is written to the pipe afterwards: the parent may close its end
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def _loop_cpu(dog: _Watchdog) -> None:
    import numpy as np

    rng = np.random.default_rng(os.getpid())
    a = rng.random((CPU_MATRIX, CPU_MATRIX), dtype=np.float32)
    b = rng.random((CPU_MATRIX, CPU_MATRIX), dtype=np.float32) / CPU_MATRIX
    c = np.empty_like(a)
    _ready()
    while True:
        for _ in range(50):
            np.matmul(a, b, out=c)
            a, c = c, a
        dog.check()


def _loop_memory(dog: _Watchdog, nbytes: int) -> None:
    import numpy as np

    n = max(1, nbytes // 8)
    src = np.empty(n, dtype=np.float64)
    dst = np.empty(n, dtype=np.float64)
    _ready()  # the first pass writes every page of both buffers: already streaming stores
    chunk = 8 * 2**20 // 8                  # 8 MiB per call: the watchdog stays responsive
    for i in range(0, n, chunk):
        src[i:i + chunk] = 1.0
        dst[i:i + chunk] = 0.0
        dog.check()
    while True:
        for i in range(0, n, chunk):
            np.copyto(dst[i:i + chunk], src[i:i + chunk])
            dog.check()
        src, dst = dst, src


def _loop_gpu(dog: _Watchdog, size: int, burst: int) -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu competitor: torch.cuda.is_available() is False")
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(os.getpid())
    a = torch.rand((size, size), device=dev, generator=g)
    b = torch.rand((size, size), device=dev, generator=g) / size
    c = torch.empty_like(a)
    torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
    _ready()
    while True:
        for _ in range(burst):
            torch.matmul(a, b, out=c)
            a, c = c, a
        torch.cuda.synchronize()
        dog.check()


def child_main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m study.competitors", description="one competitor process")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--parent", type=int, default=None, help="pid of the parent that must stay alive")
    p.add_argument("--cores", default="", help="comma-separated CPU list to pin to")
    p.add_argument("--memory-bytes", type=int, default=0)
    p.add_argument("--gpu-size", type=int, default=GPU_MATRIX)
    p.add_argument("--gpu-burst", type=int, default=GPU_BURST)
    a = p.parse_args(argv)
    die_with_parent(a.parent)
    if a.cores:
        os.sched_setaffinity(0, {int(c) for c in a.cores.split(",")})
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the parent's SIGTERM/SIGKILL end us
    dog = _Watchdog(a.parent)
    if a.kind == "cpu":
        _loop_cpu(dog)
    elif a.kind == "memory":
        _loop_memory(dog, a.memory_bytes or memory_buffer_bytes())
    else:
        _loop_gpu(dog, a.gpu_size, a.gpu_burst)
    return 0


# --------------------------------------------------------------------------- the parent side
def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS"):
        env[k] = "1"  # one competitor = one busy thread
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def spawn_child(module: str, args: Sequence[str], cores: Sequence[int] | None = None,
                env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Any]:
    """``python -m <module> <args> --parent <this pid>`` in a new process group, stdout a
    pipe (for ``READY``), stderr a temporary file (for the reason of a failure). The child
    is expected to call ``die_with_parent``. Returns (process, stderr file)."""
    err = tempfile.TemporaryFile(mode="w+b")
    argv = [sys.executable, "-m", module, *map(str, args), "--parent", str(os.getpid())]
    if cores:
        argv += ["--cores", ",".join(str(int(c)) for c in cores)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                            env=env or _child_env(), process_group=0, close_fds=True)
    return proc, err


def wait_ready(procs: Sequence[subprocess.Popen], timeout: float) -> dict[int, str]:
    """Wait for every process's ``READY`` line; returns {pid: problem} for those that
    exited or timed out instead."""
    import select

    pending = {p.stdout.fileno(): p for p in procs if p.stdout is not None}
    buf = {fd: b"" for fd in pending}
    problems: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            for p in pending.values():
                problems[p.pid] = f"no READY within {timeout:.0f} s"
            break
        ready, _, _ = select.select(list(pending), [], [], min(left, 0.5))
        for fd in ready:
            chunk = os.read(fd, 4096)
            p = pending[fd]
            if not chunk:  # EOF: the child exited or closed stdout before READY
                p.wait(timeout=5)
                problems[p.pid] = f"exited with status {p.returncode} before READY"
                del pending[fd]
                continue
            buf[fd] += chunk
            if b"READY" in buf[fd]:
                del pending[fd]
    for p in procs:
        if p.stdout is not None:
            p.stdout.close()
    return problems


def _alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``), NaN if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


_POOLS: "weakref.WeakSet[CompetitorPool]" = weakref.WeakSet()
_PREV_HANDLERS: dict[int, Any] = {}
_LOCK = threading.RLock()


def _stop_every_pool() -> None:
    for pool in list(_POOLS):
        with contextlib.suppress(Exception):
            pool.stop_all()


def _on_signal(signum, frame) -> None:
    _stop_every_pool()
    prev = _PREV_HANDLERS.get(signum, signal.SIG_DFL)
    _restore_handlers()
    if callable(prev):
        prev(signum, frame)
    elif prev == signal.SIG_DFL:
        os.kill(os.getpid(), signum)  # the default action, now that the competitors are gone


def _install_handlers() -> None:
    if threading.current_thread() is not threading.main_thread() or _PREV_HANDLERS:
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            prev = signal.getsignal(sig)
            if prev == signal.SIG_IGN or prev is None:
                continue
            signal.signal(sig, _on_signal)
            _PREV_HANDLERS[sig] = prev
        except (ValueError, OSError):
            continue


def _restore_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, prev in list(_PREV_HANDLERS.items()):
        with contextlib.suppress(ValueError, OSError, TypeError):
            if signal.getsignal(sig) is _on_signal:
                signal.signal(sig, prev)
        del _PREV_HANDLERS[sig]


atexit.register(_stop_every_pool)


def admit(kind: str, n: int, kinds: Sequence[str], reasons: Callable[[], dict[str, str | None]],
          where: str = "") -> bool:
    """Check a request to start ``n`` competitors of ``kind``: False when there is nothing to
    start (``n == 0``); ``ValueError`` for an unknown kind or a negative count,
    ``CompetitorError`` when ``reasons()`` (asked only when something would start) says why
    the kind is unavailable (``where``: the device, for the message)."""
    if kind not in kinds:
        raise ValueError(f"unknown competitor kind {kind!r}; known: {list(kinds)}")
    if n < 0:
        raise ValueError("n must be >= 0")
    if n == 0:
        return False
    why = reasons().get(kind)
    if why is not None:
        raise CompetitorError(f"{kind} competitors unavailable{where}: {why}")
    return True


@dataclass(eq=False)
class CompetitorPool:
    """Competitor processes of any kinds; a context manager that ends them all on exit."""

    grace_s: float = GRACE_S
    ready_timeout_s: float = READY_TIMEOUT_S
    device: Any = None
    memory_bytes: int | None = None
    gpu_size: int = GPU_MATRIX
    gpu_burst: int = GPU_BURST

    def __post_init__(self):
        self._procs: dict[int, tuple[str, subprocess.Popen, Any, tuple[int, ...] | None]] = {}
        self._paused: set[int] = set()
        self._reasons: dict[str, str | None] | None = None

    # -- life cycle -----------------------------------------------------------
    def __enter__(self) -> "CompetitorPool":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()

    def __del__(self):  # a pool dropped without stop_all() still ends its processes
        with contextlib.suppress(Exception):
            self.stop_all()

    def reasons(self) -> dict[str, str | None]:
        if self._reasons is None:
            self._reasons = available_kinds(self.device)
        return self._reasons

    def start(self, kind: str, n: int = 1, cores: Sequence[int] | None = None) -> list[int]:
        """Start ``n`` competitors of ``kind`` (pinned to ``cores`` if given) and wait until
        each reports READY. Returns their pids. Raises ``CompetitorError`` (after ending
        what it started) if the kind is unavailable or a child fails."""
        if not admit(kind, n, KINDS, self.reasons):
            return []
        args: list[str] = [kind]
        if kind == "memory":
            args += ["--memory-bytes", str(self.memory_bytes or memory_buffer_bytes())]
        elif kind == "gpu":
            args += ["--gpu-size", str(self.gpu_size), "--gpu-burst", str(self.gpu_burst)]
        cores_t = tuple(int(c) for c in cores) if cores is not None else None
        with _LOCK:
            _POOLS.add(self)
            _install_handlers()
            started = []
            try:
                for _ in range(n):
                    proc, err = spawn_child("study.competitors", args, cores_t)
                    self._procs[proc.pid] = (kind, proc, err, cores_t)
                    started.append(proc)
                problems = wait_ready(started, self.ready_timeout_s)
            except BaseException:
                self.stop([p.pid for p in started])
                raise
            if problems:
                detail = []
                for pid, what in problems.items():
                    detail.append(f"pid {pid}: {what}; stderr: {self._stderr(pid)[-600:]}")
                self.stop([p.pid for p in started])
                raise CompetitorError(f"{kind} competitor failed to start: " + " | ".join(detail))
        return [p.pid for p in started]

    def _stderr(self, pid: int) -> str:
        entry = self._procs.get(pid)
        if entry is None:
            return ""
        err = entry[2]
        try:
            err.seek(0)
            return err.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def stop(self, pids: Sequence[int] | None = None) -> None:
        """SIGTERM the competitors (their process groups), SIGKILL those still alive after
        the grace period, reap them all."""
        with _LOCK:
            targets = list(self._procs) if pids is None else [p for p in pids if p in self._procs]
            procs = [self._procs[p][1] for p in targets]
            for proc in procs:
                _signal_group(proc, signal.SIGTERM)
                if proc.pid in self._paused:
                    _signal_group(proc, signal.SIGCONT)  # a stopped process acts on SIGTERM once continued
            deadline = time.monotonic() + self.grace_s
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            for proc in procs:
                if _alive(proc):
                    _signal_group(proc, signal.SIGKILL)
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            for pid in targets:
                self._paused.discard(pid)
                _, _, err, _ = self._procs.pop(pid)
                with contextlib.suppress(Exception):
                    err.close()
            if not self._procs:
                _POOLS.discard(self)
                if not _POOLS:
                    _restore_handlers()

    def stop_all(self) -> None:
        self.stop(None)

    def running(self) -> dict[str, int]:
        """Kind -> number of competitors alive and loading (not paused)."""
        out = {k: 0 for k in KINDS}
        for pid, (kind, proc, _, _) in self._procs.items():
            if _alive(proc) and pid not in self._paused:
                out[kind] += 1
        return out

    def pids(self, kind: str | None = None, paused: bool | None = None) -> list[int]:
        """Pids of live competitors (of ``kind``; only paused / only loading if ``paused`` says so)."""
        return [pid for pid, (k, proc, _, _) in self._procs.items()
                if (kind is None or k == kind) and _alive(proc)
                and (paused is None or (pid in self._paused) == paused)]

    # -- stand-by: keep competitors started, load only when asked ----------------
    def pause(self, pids: Sequence[int] | None = None) -> None:
        """SIGSTOP competitors: they keep their memory (and CUDA context) but load nothing,
        so a later ``resume`` turns load on within milliseconds instead of a process start."""
        with _LOCK:
            for pid in (self.pids() if pids is None else pids):
                if pid in self._procs and _alive(self._procs[pid][1]):
                    _signal_group(self._procs[pid][1], signal.SIGSTOP)
                    self._paused.add(pid)

    def resume(self, pids: Sequence[int] | None = None, cores: Sequence[int] | None = None) -> None:
        """SIGCONT paused competitors, pinned first to ``cores`` (every thread) if given."""
        with _LOCK:
            for pid in (self.pids(paused=True) if pids is None else pids):
                if pid not in self._procs:
                    continue
                kind, proc, err, _ = self._procs[pid]
                if cores is not None:
                    pin_process(pid, cores)
                    self._procs[pid] = (kind, proc, err, tuple(int(c) for c in cores))
                _signal_group(proc, signal.SIGCONT)
                self._paused.discard(pid)

    def cpu_seconds(self) -> float:
        """CPU time the live competitors have used so far (sum)."""
        vals = [cpu_seconds(pid) for pid in self.pids()]
        return float(sum(v for v in vals if v == v))

    def describe(self) -> list[dict[str, Any]]:
        return [{"pid": pid, "kind": k, "alive": _alive(proc), "paused": pid in self._paused,
                 "cores": list(c) if c else None} for pid, (k, proc, _, c) in self._procs.items()]


def pin_process(pid: int, cores: Sequence[int]) -> None:
    """Pin every thread of process ``pid`` to ``cores``."""
    cs = {int(c) for c in cores}
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            os.sched_setaffinity(tid, cs)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is not None:
        return  # exited and reaped: its pid (and group id) may belong to someone else now
    try:
        os.killpg(proc.pid, sig)   # the child leads its own group (process_group=0)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if proc.returncode is None:
                proc.send_signal(sig)


@contextlib.contextmanager
def competitors(kind: str, n: int, cores: Sequence[int] | None = None, **pool_options: Any) -> Iterator[CompetitorPool]:
    """``n`` competitors of ``kind`` for the duration of the block (``n=0``: none, the
    pool is still usable to start more). With ``device=`` a phone (adb), the competitors
    run on the phone (``AdbDevice.competitor_pool``: the same start/stop/running/pids
    methods, no pause/resume); only its own option ``gpu_model`` is passed on."""
    device = pool_options.get("device")
    if getattr(device, "kind", None) == "adb" and hasattr(device, "competitor_pool"):
        with device.competitor_pool(gpu_model=pool_options.get("gpu_model")) as phone_pool:
            if n:
                phone_pool.start(kind, n, cores)
            yield phone_pool
        return
    with CompetitorPool(**pool_options) as pool:
        if n:
            pool.start(kind, n, cores)
        yield pool


if __name__ == "__main__":
    sys.exit(child_main())
