"""The run's report as a user opens it: in a real browser (headless Chromium, driven over the
DevTools protocol on a pipe), every figure decodes in the report's viewer, the landing page
shows the scores, job parameters read as keys and values, and nothing logs an error."""
from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import snakemake

pytestmark = pytest.mark.workflow

BROWSER = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)

# Runs in the report page: opens each result as a user would (its panel, then its view) and
# reports what the page showed. `results` and `app` are the report's own globals.
VISIT = r"""
(async () => {
  const wait = ms => new Promise(done => setTimeout(done, ms));
  const until = async test => { for (let k = 0; k < 200; k++) { const v = test(); if (v) return v; await wait(25); } return null; };
  await until(() => document.querySelector('#app h1'));
  const seen = {landing: document.querySelector('#app').innerText, images: {}, pages: {}, params: {}};
  for (const [path, result] of Object.entries(results)) {
    app.showResultInfo(path);
    const panel = await until(() => [...document.querySelectorAll('#app ul')].find(ul => ul.innerText.includes(path)));
    seen.params[path] = panel ? panel.innerText : null;
    if (result.mime_type.startsWith('image/')) {
      app.setView({content: 'img', contentPath: result.data_uri, resultPath: path});
      const img = await until(() => [...document.querySelectorAll('#app img')].find(i => i.src === result.data_uri));
      let size = null;
      try { await img.decode(); size = [img.naturalWidth, img.naturalHeight]; } catch (error) { size = null; }
      seen.images[path] = size;
    } else if (result.mime_type === 'text/html') {
      seen.pages[path] = await (await fetch(result.data_uri)).text();
    }
  }
  return seen;
})()
"""


class Chromium:
    """Headless Chromium with the DevTools protocol on a pipe (--remote-debugging-pipe: commands
    in on fd 3, replies out on fd 4, NUL-separated JSON), so no port and no websocket library."""

    def __init__(self, executable: str, profile: Path):
        to_browser, commands = os.pipe()
        replies, from_browser = os.pipe()
        # Above 4, so that placing them at 3 and 4 in the child cannot overwrite one with the other.
        child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser))

        def on_fds_3_and_4() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"],
            preexec_fn=on_fds_3_and_4, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for fd in (to_browser, from_browser, child_in, child_out):
            os.close(fd)
        self.commands, self.replies = commands, replies
        self.buffer, self.events, self.last_id = b"", [], 0

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params} | ({"sessionId": session} if session else {})
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while (reply := self._receive(deadline)).get("id") != self.last_id:
            self.events.append(reply)
        assert "error" not in reply, f"{method}: {reply['error']}"
        return reply["result"]

    def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._receive(deadline))

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.replies], [], [], max(deadline - time.monotonic(), 0))
            assert ready, "Chromium did not answer in time"
            chunk = os.read(self.replies, 1 << 20)
            assert chunk, "Chromium exited"
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def visit(self, page: Path) -> dict[str, Any]:
        """Open ``page`` in a new tab and run VISIT there; its findings."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", session=session, url=page.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        result = self.send("Runtime.evaluate", session=session, expression=VISIT, awaitPromise=True, returnByValue=True, timeout=120)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"]["value"]

    def errors(self) -> list[str]:
        """What the page logged as an error: uncaught exceptions, console.error, failed loads."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("exception", {}).get("description") or params["exceptionDetails"]["text"])
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self.commands)
        os.close(self.replies)


@pytest.mark.skipif(BROWSER is None, reason="needs Chromium (Debian: apt-get install chromium; .ci/run installs it)")
def test_report_opens_in_a_browser_with_every_figure_and_the_scores(finished, tmp_path):
    results = finished / "results"
    page = results / "report_browser.html"
    run = snakemake(finished, "--cores", "1", "--report", str(page))
    assert run.returncode == 0, run.stdout[-3000:]

    browser = Chromium(BROWSER, tmp_path / "profile")
    try:
        seen = browser.visit(page)
        errors = browser.errors()
    finally:
        browser.close()

    assert not errors, errors
    images = {path for path in seen["params"] if path.endswith(".png")}
    assert {"results/lensing/report/rendered.png", "results/lensing/eval/h0.png", "results/ariel/eval/scores.png"} <= images
    broken = [path for path in images if not seen["images"].get(path)]
    assert not broken, f"figures that did not load: {broken}"

    landing = seen["landing"]
    for part in ("Headline scores", "lensing models", "challenge score (held-out planets)", "baseline ref", "ensemble",
                 "Consistency reports", "ariel/data/train/ingest_report.json", "Software", "snakemake 9.", "Run configuration"):
        assert part in landing, part
    assert (results / "report" / "headline.txt").read_text().startswith("Headline scores")
    assert "Headline scores" in seen["pages"]["results/report/summary.html"]

    evaluate = seen["params"]["results/ariel/eval/scores.png"]
    assert "settings={ariel.splits.test_fold: 0, ariel.splits.val_fold: 1}" in evaluate, evaluate
    assert not [path for path, panel in seen["params"].items() if '\\"' in (panel or "")], "job parameters shown as escaped JSON"
