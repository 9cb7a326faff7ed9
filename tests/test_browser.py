"""The report as a reader sees it: the real results/report.html in headless Chromium.

The workflow runs on the mini tables (tests/fixtures/mini/) in a temporary directory,
as in tests/test_workflow.py, with results/report.pdf requested too. Debian's chromium
(installed by scripts/install_browser.sh when missing; a failed install fails the test,
it is never skipped) then opens the report. The test drives Chromium through the
DevTools protocol over a pipe (``--remote-debugging-pipe``: no port, no websocket
library) and checks what a person would notice:

* every image has loaded (``naturalWidth > 0``);
* nothing was fetched from the network: every request the page made is the report file
  itself or a ``data:`` URI (a control page shows that a fetch would be seen);
* no console errors, exceptions or Content-Security-Policy violations;
* the key numbers on the page, as rendered text, equal pooled.csv: each analysis'
  overall estimate with its CI and its prediction interval (formatted as the report
  formats them), k and participants, in the summary of findings and in the analysis'
  own pooled table;
* a full-page screenshot is taken (kept in the test's temporary directory, or in
  ``$METAPOOL_SCREENSHOT_DIR`` when set);
* the PDF shows the same numbers (pdftotext) and renders to a page image (pdftoppm).

The module takes about 30-45 s on a 2-core machine, most of it the workflow run.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from metapool.formatting import fmt_effect_ci, fmt_int, fmt_interval

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "tests" / "fixtures" / "mini"
ANALYSES = ("orr_mini", "dcr_mini", "os_hr_mini", "pfs_hr_mini")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--mute-audio",
)


# --------------------------------------------------------------------------- browser


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe.

    Chromium reads NUL-terminated JSON messages on file descriptor 3 and writes its
    answers and events on descriptor 4 (``--remote-debugging-pipe``).
    """

    def __init__(self, binary: str, timeout: float = 60.0) -> None:
        self.profile = tempfile.mkdtemp(prefix="metapool-chromium-")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        def wire() -> None:  # in the child, before exec: the pipes become fds 3 and 4
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
             "--remote-debugging-pipe", "about:blank"],
            preexec_fn=wire, pass_fds=(3, 4),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._out = os.fdopen(to_browser_w, "wb", buffering=0)
        self._in = os.fdopen(from_browser_r, "rb", buffering=0)
        self._buffer = b""
        self._id = 0
        self.timeout = timeout
        self.events: list[dict] = []

    def _receive(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = self._in.read(1 << 16)
            if not chunk:
                err = self.process.stderr.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium closed the DevTools pipe: {err}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None):
        """Send a command and wait for its result; events meanwhile are kept."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._out.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            answer = self._receive()
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)
        raise TimeoutError(method)

    def wait_for(self, event: str, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == event and e.get("sessionId") == session
                      for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(event)
            self.events.append(self._receive())

    def open(self, url: str, width: int = 1280, height: int = 1000) -> str:
        """A new tab with Page, Network, Runtime and Log events on; loads ``url``."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1,
                   "mobile": False}, session)
        self.call("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        return session

    def evaluate(self, session: str, expression: str):
        result = self.call("Runtime.evaluate",
                           {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def session_events(self, session: str, *methods: str) -> list[dict]:
        return [e["params"] for e in self.events
                if e.get("sessionId") == session and e.get("method") in methods]

    def errors(self, session: str) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (CSP, loads)."""
        out = []
        for e in self.session_events(session, "Runtime.consoleAPICalled"):
            if e.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in e.get("args", [])))
        for e in self.session_events(session, "Runtime.exceptionThrown"):
            out.append("exception: " + json.dumps(e.get("exceptionDetails", {}))[:300])
        for e in self.session_events(session, "Log.entryAdded"):
            entry = e.get("entry", {})
            if entry.get("level") == "error":
                out.append(f"log ({entry.get('source')}): {entry.get('text')} "
                           f"{entry.get('url', '')}")
        return out

    def requests(self, session: str) -> list[str]:
        return [e["request"]["url"]
                for e in self.session_events(session, "Network.requestWillBeSent")]

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        for stream in (self._in, self._out, self.process.stderr):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    """Debian's chromium (and poppler-utils), installed by the project's script."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "install_browser.sh")],
        capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, (
        "scripts/install_browser.sh could not provide chromium and poppler-utils:\n"
        + result.stdout + result.stderr)
    binary = shutil.which("chromium")
    assert binary, "chromium is not on PATH after scripts/install_browser.sh"
    return binary


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A workflow run on the mini tables, with the PDF requested too."""
    work = tmp_path_factory.mktemp("browser") / "work"
    work.mkdir()
    shutil.copy2(REPO / "Snakefile", work / "Snakefile")
    for name in ("workflow", "profiles"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("config", "data"):
        shutil.copytree(MINI / name, work / name)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--directory", str(work), "--cores", "2",
         "default", "results/report.pdf"],
        cwd=work, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return work


@pytest.fixture(scope="module")
def page(run, chromium_binary, tmp_path_factory):
    """The report loaded in Chromium: what it requested, logged and shows."""
    browser = Chromium(chromium_binary)
    try:
        report = run / "results" / "report.html"
        url = report.resolve().as_uri()
        session = browser.open(url)
        images = browser.evaluate(session, """JSON.stringify(Array.from(document.images).map(
            i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
                   height: i.naturalHeight, shown: i.getBoundingClientRect().width})))""")
        texts = browser.evaluate(session, """JSON.stringify(Object.fromEntries(
            Array.from(document.querySelectorAll('#summary tr[data-analysis]')).map(
              tr => [tr.dataset.analysis, tr.innerText])))""")
        pooled = browser.evaluate(session, """JSON.stringify(Object.fromEntries(
            Array.from(document.querySelectorAll('section.analysis')).map(
              s => [s.id, (s.querySelector('table.pooled tr.overall') || {}).innerText || ''])))""")
        body = browser.evaluate(session, "document.body.innerText")
        size = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        height = min(int(size["height"]), 16000)
        shot = browser.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": int(size["width"]), "height": height,
                     "scale": 1}}, session)
        directory = Path(os.environ.get("METAPOOL_SCREENSHOT_DIR")
                         or tmp_path_factory.mktemp("screenshot"))
        directory.mkdir(parents=True, exist_ok=True)
        png = directory / "report.png"
        png.write_bytes(base64.b64decode(shot["data"]))
        yield {
            "url": url,
            "images": json.loads(images),
            "summary": json.loads(texts),
            "pooled": json.loads(pooled),
            "body": body,
            "requests": browser.requests(session),
            "errors": browser.errors(session),
            "screenshot": png,
            "height": int(size["height"]),
        }
    finally:
        browser.close()


def overall_rows(run: Path) -> dict[str, tuple[dict, dict]]:
    """pooled.csv's overall row and analysis.json of each analysis."""
    out = {}
    for name in ANALYSES:
        with open(run / "results" / name / "pooled.csv", newline="", encoding="utf-8") as f:
            row = next(r for r in csv.DictReader(f) if r["model"] == "overall")
        doc = json.loads((run / "results" / name / "analysis.json").read_text())
        out[name] = (row, doc)
    return out


def number(text: str):
    return float(text) if text not in ("", None) else None


# --------------------------------------------------------------------------- tests


def test_every_image_loaded(page):
    images = page["images"]
    # one forest plot per analysis (other figures when the workflow draws them)
    assert sum(i["alt"].startswith("Forest plot: ") for i in images) == len(ANALYSES)
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert image["shown"] > 0, image


def test_nothing_fetched_from_the_network(page):
    requests = page["requests"]
    assert requests, "the page made no request at all: the harness saw nothing"
    assert requests[0] == page["url"]
    others = [u for u in requests if u != page["url"] and not u.startswith("data:")]
    assert not others, others


def test_no_console_errors(page):
    assert page["errors"] == []


def test_key_numbers_equal_pooled_csv(page, run):
    for name, (row, doc) in overall_rows(run).items():
        measure = doc["measure"]
        estimate = fmt_effect_ci(number(row["estimate"]), number(row["ci_lower"]),
                                 number(row["ci_upper"]), measure)
        pi = fmt_interval(number(row["pi_lower"]), number(row["pi_upper"]), measure)
        assert estimate != "—", (name, row)
        # no prediction interval with k = 2 (pfs_hr_mini): the page shows a dash
        assert (pi == "—") == (number(row["k"]) < 3), (name, row)
        summary = page["summary"][name]
        cells = summary.split("\t")
        assert estimate in summary, (name, estimate, summary)
        assert pi in cells, (name, pi, cells)
        assert fmt_int(number(row["k"])) in cells and fmt_int(
            number(row["n_participants"])) in cells, (name, cells)
        assert doc["title"] in summary
        own = page["pooled"][f"analysis-{name}"]
        assert own.startswith("Overall"), own
        assert estimate in own and pi in own, (name, own)


def test_page_reads_as_a_report(page):
    body = page["body"]
    for heading in ("Summary of findings", "What changed since the previous run",
                    "Statistical methods", "Warnings raised during the run",
                    "Data provenance", "Hazard-ratio conversion log"):
        assert heading in body, heading
    assert "This is the first recorded run" in body
    assert "not assessed" in body  # the mini config gives no GRADE judgements
    assert "None" not in body.split() and "nan" not in body.split()


def test_screenshot(page):
    png = page["screenshot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 1000 and height == min(page["height"], 16000) and height > 3000
    from PIL import Image

    with Image.open(page["screenshot"]) as image:
        colours = image.convert("RGB").resize((64, 256)).getcolors(64 * 256)
    assert colours is None or len(colours) > 20  # text, rules, figures: not blank


def test_harness_sees_fetches_and_errors(chromium_binary, tmp_path):
    """A control page: a network load and a console error must be noticed."""
    control = tmp_path / "control.html"
    control.write_text(
        "<!DOCTYPE html><title>control</title>"
        '<img src="http://127.0.0.1:9/missing.png" alt="remote">'
        "<script>console.error('control error')</script>", encoding="utf-8")
    browser = Chromium(chromium_binary)
    try:
        session = browser.open(control.as_uri())
        assert "http://127.0.0.1:9/missing.png" in browser.requests(session)
        assert any("control error" in e for e in browser.errors(session))
        width = browser.evaluate(session, "document.images[0].naturalWidth")
        assert width == 0  # and a broken image reads as not loaded
    finally:
        browser.close()


def test_pdf_shows_the_same_numbers(run, chromium_binary, tmp_path):
    pdf = run / "results" / "report.pdf"
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    assert "Title:           metapool mini test report" in info.stdout
    pages = int(next(line.split()[-1] for line in info.stdout.splitlines()
                     if line.startswith("Pages:")))
    assert pages >= 5
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "Summary of findings" in text and "Statistical methods" in text
    for name, (row, doc) in overall_rows(run).items():
        estimate = fmt_effect_ci(number(row["estimate"]), number(row["ci_lower"]),
                                 number(row["ci_upper"]), doc["measure"])
        assert estimate in text, (name, estimate)
    # the first page as an image: the summary of findings is on it
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / "page")], check=True, timeout=120)
    (first,) = tmp_path.glob("page*.png")
    assert first.stat().st_size > 5000
