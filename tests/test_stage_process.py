"""A stage's processes and outputs: every process ends when its parent dies (the stage
process, the notebook's kernel, the children it starts), and an executed notebook holds
results, not progress updates or native libraries' log lines (those go to the stage's log)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from study.paths import ROOT
from study import lifetime, stagelog



def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _wait_gone(pids, timeout: float = 10.0) -> list[int]:
    """Pids still alive after ``timeout`` (then killed by pid, so a failing test leaves none)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def _notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def stream_text(nb_path: Path) -> str:
    """Everything the executed notebook's cells printed (stream outputs)."""
    nb = json.loads(Path(nb_path).read_text())
    out = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                out.append("".join(o["text"]) if isinstance(o["text"], list) else o["text"])
    return "".join(out)


NOISE = ("INFO", "IProgress", "samples (upper bound)", "it/s", "XNNPACK", "%|")


# --------------------------------------------------------------------------- helpers, no kernel
def test_progress_goes_to_the_stage_log_and_nowhere_else(tmp_path, capfd):
    assert stagelog.current() is None and not stagelog.in_kernel()
    log = tmp_path / "raw" / "log" / "x.log"
    stagelog.start(log, redirect_fd2=False)
    try:
        bar = stagelog.progress(100, "samples (upper bound)", every_s=0.0)
        for n in (10, 50, 100):
            bar.set(n)
        bar.close()
        stagelog.write_lines(["INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "  "], "native")
    finally:
        stagelog.stop()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    text = log.read_text()
    assert "samples (upper bound): 50/100 (50%)" in text and "samples (upper bound): 100/100 (100%)" in text
    assert "native: INFO: Created TensorFlow Lite XNNPACK delegate" in text
    assert stagelog.current() is None


def test_without_a_stage_log_progress_is_silent_off_a_terminal(capfd):
    bar = stagelog.progress(10, "samples (upper bound)")
    bar.set(5)
    bar.close()
    assert capfd.readouterr() == ("", "")


def test_native_stderr_captured_around_engine_calls_lands_in_the_stage_log(tmp_path, capfd):
    from study.engines.base import captured_native_stderr

    stagelog.start(tmp_path / "s.log", redirect_fd2=False)
    try:
        with captured_native_stderr() as lines:
            os.write(2, b"INFO: native line from C++\n")
    finally:
        stagelog.stop()
    assert lines == ["INFO: native line from C++"]
    assert capfd.readouterr().err == ""
    assert "native: INFO: native line from C++" in (tmp_path / "s.log").read_text()


def test_stage_log_path_is_under_the_devices_raw_log_folder(tmp_path):
    assert stagelog.log_path("local", "contention", tmp_path) == tmp_path / "local" / "raw" / "log" / "contention.log"


def test_stage_commands_die_with_their_parent(monkeypatch):
    from study import cli

    calls = []
    monkeypatch.setattr(lifetime, "die_with_parent", lambda ppid=None: calls.append(ppid))
    monkeypatch.setattr(cli, "run_stage", lambda stage: 0)
    monkeypatch.setattr(sys, "argv", ["study", "run", "rigor"])
    assert cli.main() == 0 and calls == [os.getppid()]
    calls.clear()
    assert cli.main(["run", "rigor"]) == 0 and calls == []     # called in-process (tests): not bound


# --------------------------------------------------------------------------- a real kernel
def test_executed_notebook_holds_results_not_progress_or_native_log_lines(tmp_path, tiny_model):
    """Through papermill (the stage's kernel manager): the harness with progress on, native writes
    to fd 2 (os.write, libc's write, a LiteRT session) and a print; only the print is in the
    notebook, the rest in the stage's log."""
    from study.cli import execute_notebook

    data = tmp_path / "data"
    nb = _notebook(tmp_path / "nb.ipynb", f"""
        import ctypes, os
        from pathlib import Path
        import yaml
        from study import rigor
        from study.common import context, start_stage_log
        from study.measure import Config, Harness, HarnessSettings, RawLog

        p = yaml.safe_load(Path({str(ROOT / 'params.yaml')!r}).read_text())
        params = {{"device": "local", "profile": "quick", "seed": 1, "harness": p["harness"]["quick"],
                   **{{k: f.default for k, f in rigor.PARAMS.items()}}}}
        ctx = context("rigor", params)
        ctx.data_root = Path({str(data)!r})
        start_stage_log(ctx)
        """, """
        class Sess:
            def run(self):
                pass

        s = HarnessSettings(warmup=1, min_samples=20, max_samples=20, block_size=2, max_seconds=60)
        df = Harness(s, RawLog(ctx.data_root / "h.jsonl"), progress=True).run(
            [Config(columns={"model": "m"}, opener=Sess)])
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
        libc = ctypes.CDLL(None)
        msg = b"I0000 00:00:00.000000 1 native_logger.cc:1] INFO from libc write\\n"
        libc.write(2, msg, len(msg))
        """, f"""
        from study.engines.litert import LiteRTEngine
        from study.models import ModelSpec

        spec = ModelSpec(name="tiny", source="user", task="classification",
                         files={{"tflite": {str(tiny_model.files['tflite'])!r}}})
        sess = LiteRTEngine().open(spec, "cpu", 1, seed=0)
        sess.run()
        sess.close()
        print("RESULT", len(df))
        """)
    out = tmp_path / "out.ipynb"
    execute_notebook(nb, out, {}, log_output=False)
    printed = stream_text(out)
    assert printed == "RESULT 20\n", printed
    log = (data / "local" / "raw" / "log" / "rigor.log").read_text()
    assert "samples (upper bound): 20/20" in log
    assert "INFO: Created TensorFlow Lite XNNPACK delegate" in log and "INFO from libc write" in log


def test_noise_check_flags_progress_and_info_lines(tmp_path):
    """The check of the test above catches what the issue found in executed notebooks."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="IProgress not found. Please update\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="samples (upper bound):  40%|####  | 4/10\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="INFO: Created TensorFlow Lite XNNPACK\n")]
    nb.cells = [cell]
    nbformat.write(nb, str(tmp_path / "n.ipynb"))
    text = stream_text(tmp_path / "n.ipynb")
    assert all(any(n in line for n in NOISE) for line in text.splitlines())


def test_stage_process_kernel_and_their_children_end_when_dvc_dies(tmp_path):
    """'dvc' starts a stage process that runs a notebook (study.cli.execute_notebook, as
    ``python -m study run`` does, bound to its parent as study.cli.main binds it); the notebook
    starts a child. SIGKILL of 'dvc' alone ends the stage process, the kernel and the child, and
    nothing is written afterwards."""
    pids, ticks, out = tmp_path / "pids", tmp_path / "ticks", tmp_path / "out.ipynb"
    nb = _notebook(tmp_path / "nb.ipynb", f"""
        import os, subprocess, sys, time
        from study import lifetime
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], **lifetime.popen_kwargs())
        Path = __import__("pathlib").Path
        Path({str(pids)!r}).write_text(f"{{os.getppid()}} {{os.getpid()}} {{child.pid}}\\n")
        for i in range(600):
            with open({str(ticks)!r}, "a") as f:
                f.write(".")
            time.sleep(0.1)
        """)
    stage = textwrap.dedent(f"""
        import os, sys
        ppid = os.getppid()
        from study import cli, lifetime
        lifetime.die_with_parent(ppid)
        cli.execute_notebook({str(nb)!r}, {str(out)!r}, {{}}, log_output=False)
        """)
    dvc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {stage!r}], cwd={str(ROOT)!r})
        time.sleep(300)
        """)], cwd=str(ROOT), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (pids.exists() and pids.read_text().endswith("\n")):
            assert dvc.poll() is None
            time.sleep(0.2)
        stage_pid, kernel_pid, child_pid = map(int, pids.read_text().split())
        while not ticks.exists():
            time.sleep(0.1)
        os.kill(dvc.pid, signal.SIGKILL)          # dvc only, not its process group
        dvc.wait()
        assert _wait_gone([stage_pid, kernel_pid, child_pid]) == []
        time.sleep(0.5)
        n, mtime = len(ticks.read_text()), out.stat().st_mtime if out.exists() else None
        time.sleep(1.5)
        assert len(ticks.read_text()) == n                                  # the kernel wrote nothing more
        assert (out.stat().st_mtime if out.exists() else None) == mtime     # nor did the stage process
    finally:
        if dvc.poll() is None:
            dvc.kill()
            dvc.wait()


def test_a_child_whose_parent_is_gone_exits_at_once():
    r = subprocess.run([sys.executable, "-c", "from study import lifetime; lifetime.die_with_parent(1); "
                        "import time; time.sleep(30)"], cwd=str(ROOT), timeout=20)
    assert r.returncode == 3


def test_rigor_child_checks_its_parent_first():
    """The rigor child (``python -m study.rigor SPEC``) exits when the parent its spec names is
    not its parent (the parent died before the prctl took effect)."""
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "study.rigor", json.dumps({"parent": 1})], cwd=str(ROOT),
                       capture_output=True, timeout=60)
    assert r.returncode == 3 and time.monotonic() - t0 < 30


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_popen_kwargs_bind_a_child_to_its_parent(tmp_path):
    """A parent that starts ``sleep`` with ``popen_kwargs`` and is SIGKILLed takes the child along."""
    pidf = tmp_path / "pid"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import subprocess, time
        from study import lifetime
        c = subprocess.Popen(["sleep", "120"], **lifetime.popen_kwargs())
        open({str(pidf)!r}, "w").write(str(c.pid))
        time.sleep(120)
        """)], cwd=str(ROOT))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (pidf.exists() and pidf.read_text()):
            time.sleep(0.05)
        child = int(pidf.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert _wait_gone([child], 5) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
