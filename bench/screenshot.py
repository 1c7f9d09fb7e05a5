"""Open a run's summary.html in headless Chromium: console errors, broken images, a screenshot.

    python bench/screenshot.py RUN [--out plots] [--render] [--width 1400 --height 2400]

writes OUT/summary_html.png (the top of RUN/modisco_files/summary.html as Chromium draws it) and
copies RUN/plots/helix.png to OUT/helix.png: the readme's pictures, re-made from any run folder
(`--render` runs the pipeline's summary step first). Exits 1 when the page logs an error.

Chromium (Debian's `chromium`, /usr/bin/chromium) is driven through the DevTools protocol over
a pipe (--remote-debugging-pipe): no port, no websocket library, and the console's messages come
with their levels, so errors (console.error, uncaught exceptions, failed loads) are told apart
from warnings. `check_page` is what tests/test_report.py uses.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-unsafe-swiftshader",  # WebGL (plotly's 3-D) on the CPU, without a warning
         "--remote-debugging-pipe"]
# what the page reports about itself once loaded
PAGE_FACTS = """JSON.stringify({
  images: document.images.length,
  broken_images: Array.from(document.images)
      .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt || i.src.slice(0, 60)),
  plotly_plots: document.querySelectorAll('.js-plotly-plot').length,
  webgl_canvases: document.querySelectorAll('.js-plotly-plot canvas').length,
  title: document.title,
  height: document.documentElement.scrollHeight})"""


class Chromium:
    """Headless Chromium with one page, driven over --remote-debugging-pipe (fd 3: commands in,
    fd 4: replies and events out, each a JSON message ending in a NUL byte)."""

    def __init__(self, executable=CHROMIUM, timeout=60.0):
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self._log = tempfile.TemporaryFile()  # Chromium's own log (a pipe could fill and block)
        commands_r, self._w = os.pipe()
        self._r, replies_w = os.pipe()
        # a small launcher puts the pipes on fds 3 and 4, where Chromium expects them, and
        # becomes Chromium (commands_r < replies_w, so the first dup2 cannot overwrite the other)
        wire = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
                "os.execv(sys.argv[3], sys.argv[3:])")
        self.process = subprocess.Popen(
            [sys.executable, "-c", wire, str(commands_r), str(replies_w), executable, *FLAGS,
             f"--user-data-dir={self.profile}", "about:blank"], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self._log, pass_fds=(commands_r, replies_w))
        os.close(commands_r)
        os.close(replies_w)
        self.timeout, self._buffer, self._id, self.events = timeout, b"", 0, []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.page = self.send("Target.attachToTarget",
                              {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", on_page=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"Chromium closed its DevTools pipe: {self._tail()}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _tail(self):
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-800:]

    def send(self, method, params=None, on_page=False, timeout=None):
        """Send a DevTools command and return its result; events meanwhile are kept."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if on_page:  # a command to the page's target, not to the browser
            message["sessionId"] = self.page
        try:
            os.write(self._w, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise RuntimeError(f"Chromium is not running: {self._tail()}") from None
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._message(deadline))

    def drain(self, seconds):
        """Collect the events of the next `seconds`."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._message(deadline))
        except TimeoutError:
            pass

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, on_page=True)
        return result.get("result", {}).get("value")

    def messages(self):
        """(errors, warnings) the page logged: console calls, uncaught exceptions, log entries
        (failed loads among them)."""
        errors, warnings = [], []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append("uncaught: " + details.get("exception", {}).get(
                    "description", details.get("text", "")))
            elif method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", "")))
                                for a in params.get("args", []))
                level = params.get("type")
                (errors if level in ("error", "assert") else
                 warnings if level == "warning" else []).append(f"console.{level}: {text}")
            elif method == "Log.entryAdded":
                entry = params["entry"]
                text = f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}"
                (errors if entry.get("level") == "error" else
                 warnings if entry.get("level") == "warning" else []).append(text.strip())
        return errors, warnings

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        for fd in (self._w, self._r):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)


def check_page(html, screenshot=None, width=1400, height=2400, settle=1.0,
               executable=CHROMIUM) -> dict:
    """Open the file `html` in headless Chromium at a width x height window, wait for its load
    event (and `settle` seconds more, for plotly's WebGL), and write the window as a PNG to
    `screenshot`. Returns the page's facts (images, broken_images, plotly_plots, title, height)
    with its "errors" and "warnings" and the "seconds" it took."""
    start = time.perf_counter()
    with Chromium(executable) as browser:
        browser.send("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            on_page=True)
        browser.send("Page.navigate", {"url": Path(html).resolve().as_uri()}, on_page=True)
        browser.wait_for("Page.loadEventFired")
        browser.drain(settle)
        facts = json.loads(browser.evaluate(PAGE_FACTS))
        if screenshot is not None:
            data = browser.send("Page.captureScreenshot", {"format": "png"}, on_page=True)
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            Path(screenshot).write_bytes(base64.b64decode(data["data"]))
        browser.drain(0.2)
        facts["errors"], facts["warnings"] = browser.messages()
    facts["seconds"] = round(time.perf_counter() - start, 1)
    return facts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a pipeline run folder (--out of the pipeline)")
    parser.add_argument("--out", default="plots", help="folder of summary_html.png, helix.png")
    parser.add_argument("--render", action="store_true",
                        help="run the pipeline's summary step on RUN first (summary.md, "
                             "summary.html and the helix, with the default settings)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2400)
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args(argv)
    run, out = Path(args.run), Path(args.out)
    if args.render:  # the pipeline's summary step, with its default settings
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from caduceus_lrp.pipeline import PipelineConfig, step_summary

        step_summary(PipelineConfig(out=str(run)))
    html = run / "modisco_files" / "summary.html"
    if not html.is_file():
        sys.exit(f"error: {html}: no such file (run the pipeline's summary step, or --render)")
    if not Path(args.chromium).is_file():
        sys.exit(f"error: {args.chromium}: no Chromium (apt-get install chromium)")
    facts = check_page(html, out / "summary_html.png", args.width, args.height,
                       executable=args.chromium)
    print(f"wrote {out / 'summary_html.png'} ({facts['seconds']} s; {facts['images']} images, "
          f"{facts['plotly_plots']} interactive plots, page {facts['height']} px tall)")
    helix = run / "plots" / "helix.png"
    if helix.is_file() and helix.resolve() != (out / "helix.png").resolve():
        shutil.copyfile(helix, out / "helix.png")
        print(f"wrote {out / 'helix.png'}")
    for line in facts["errors"]:
        print(f"page error: {line}", file=sys.stderr)
    return 1 if facts["errors"] or facts["broken_images"] else 0


if __name__ == "__main__":
    sys.exit(main())
