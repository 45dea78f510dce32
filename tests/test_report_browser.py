"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``) opens it,
every image must be loaded (``naturalWidth > 0``), no console error or exception, every
claim of every device listed with a verdict and a reason; a screenshot is saved.

Driven through the DevTools protocol (``--remote-debugging-port``, ``websocket-client``).
Two reports: one rendered from synthetic data in a temporary folder (always), and the
repository's own ``figures/<device>/paper/report.html`` when ``dvc repro`` made one.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from study import claims as C
from study import paths

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's `chromium` is not installed "
                                "(scripts/setup.sh --test installs it: apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--hide-scrollbars", "--window-size=1280,1600"]


class Browser:
    """A headless Chromium and one page, over the DevTools protocol."""

    def __init__(self, profile_dir: Path, timeout: float = 60):
        import websocket  # websocket-client

        self.timeout = timeout
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile_dir}", "--remote-debugging-port=0",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = profile_dir / "DevToolsActivePort"
        t0 = time.time()
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited: {self.proc.stderr.read().decode()[-2000:]}")
            if time.time() - t0 > timeout:
                self.close()
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        for m in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(m)

    def call(self, method: str, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        t0 = time.time()
        while time.time() - t0 < self.timeout:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)
        raise TimeoutError(method)

    def wait_event(self, method: str):
        t0 = time.time()
        while time.time() - t0 < self.timeout:
            if any(e.get("method") == method for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def evaluate(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"])
        return r["result"].get("value")

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + p["entry"].get("text", ""))
        return out

    def screenshot(self, path: Path, max_height: int = 12000) -> Path:
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self):
        try:
            if getattr(self, "ws", None):
                try:
                    self.call("Browser.close")
                except Exception:  # noqa: BLE001 - the browser may close before answering
                    pass
                self.ws.close()
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


IMAGES_JS = "JSON.stringify(Array.from(document.images).map(i => ({alt: i.alt, w: i.naturalWidth, c: i.complete})))"
CLAIMS_JS = """JSON.stringify(Array.from(document.querySelectorAll('tr.claim-row')).map(r => ({
  device: r.dataset.device, claim: r.dataset.claim, verdict: r.dataset.verdict,
  reason: (r.querySelector('td.reason') || {innerText: ''}).innerText.trim()})))"""


def open_report(report: Path, profile_dir: Path, screenshot: Path) -> dict:
    """Open ``report`` in headless Chromium; returns images, claim rows, errors, title."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    b = Browser(profile_dir)
    try:
        b.call("Page.navigate", url=report.resolve().as_uri())
        b.wait_event("Page.loadEventFired")
        b.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 200)))")
        out = {"images": json.loads(b.evaluate(IMAGES_JS)), "claims": json.loads(b.evaluate(CLAIMS_JS)),
               "title": b.evaluate("document.title"),
               "text": b.evaluate("document.body.innerText")}
        out["screenshot"] = b.screenshot(screenshot)
        out["errors"] = b.errors()
        return out
    finally:
        b.close()


def check_report(result: dict, devices: list[str] | None = None) -> None:
    assert result["images"], "the report has no image"
    bad = [i for i in result["images"] if not (i["c"] and i["w"] > 0)]
    assert not bad, f"images not loaded: {bad}"
    assert not result["errors"], result["errors"]
    rows = result["claims"]
    found_devices = devices or sorted({r["device"] for r in rows})
    assert found_devices, "no device in the claims table"
    for dev in found_devices:
        mine = {r["claim"]: r for r in rows if r["device"] == dev}
        assert set(mine) == set(C.CLAIMS), f"{dev}: claims listed {sorted(mine)}"
        for r in mine.values():
            assert r["verdict"] in C.VERDICTS, r
            assert len(r["reason"]) > 3, f"{dev} {r['claim']}: no reason"
    assert result["screenshot"].stat().st_size > 10_000


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import paper_synthetic as S

    from study import paper
    from study.common import context
    from study.config import resolve

    root = tmp_path_factory.mktemp("paper")
    roots = S.make_tree(root)
    ctx = context("paper", resolve("paper", {**yaml.safe_load(paths.PARAMS.read_text()), "profile": "quick"}))
    ctx.data_root, ctx.figures_root = roots["data"], roots["figures"]
    ctx.reference_root, ctx.peers_root, ctx.metrics_root = roots["reference"], roots["peers"], roots["metrics"]
    res = paper.run(ctx)
    return res["files"]["report"], [S.CPU_SLUG, S.GPU_SLUG, S.PHONE_SLUG]


def test_synthetic_report_renders_in_chromium(synthetic_report, tmp_path):
    report, devices = synthetic_report
    shot = tmp_path / "report.png"
    res = open_report(report, tmp_path / "profile", shot)
    check_report(res, devices)
    assert res["title"].startswith("Heterogeneous")
    # the numbers in the text are those of the metrics file (5 reproduced on the synthetic reference)
    metrics = json.loads((report.parents[3] / "metrics/local/paper.json").read_text())
    assert metrics["test-xeon_16c_nvidia-h100"]["counts"]["reproduced"] == 5
    n = metrics["test-xeon_16c_nvidia-h100"]["counts"]["claims"]      # C1..C11
    assert n == 11 and f"On test-xeon_16c_nvidia-h100: 5 of {n} claims reproduced, 0 contradicted" in res["text"]
    print(f"screenshot: {shot}")


def test_report_check_fails_on_a_broken_image(synthetic_report, tmp_path):
    """The check can fail: a report with a broken image and a script error is refused."""
    report, devices = synthetic_report
    broken = tmp_path / "broken.html"
    html = report.read_text().replace("<body>", '<body><img alt="broken" src="data:image/png;base64,AAAA">'
                                      "<script>console.error('boom')</script>", 1)
    broken.write_text(html)
    res = open_report(broken, tmp_path / "profile", tmp_path / "broken.png")
    with pytest.raises(AssertionError, match="images not loaded"):
        check_report(res, devices)
    assert any("boom" in e for e in res["errors"])


def _repo_report() -> Path | None:
    try:
        dev = yaml.safe_load(paths.PARAMS.read_text())["device"]
    except Exception:  # noqa: BLE001
        return None
    p = paths.figures_dir(dev, "paper") / "report.html"
    return p if p.is_file() else None


@pytest.mark.skipif(_repo_report() is None, reason="no report yet: `dvc repro` (or `python -m study run paper`) "
                    "writes figures/<device>/paper/report.html")
def test_repository_report_renders_in_chromium(tmp_path):
    shot = tmp_path / "report.png"
    res = open_report(_repo_report(), tmp_path / "profile", shot)
    check_report(res)
    print(f"screenshot: {shot}")
    if os.environ.get("REPORT_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["REPORT_SCREENSHOT"])
