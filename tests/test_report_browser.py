"""The report in a real browser: headless Chromium renders a report of real quick-run results.

Checks that every image decodes (naturalWidth > 0), that the page logs nothing to the console
(the report runs no script, and its Content-Security-Policy would log any blocked load), that a
label written as a <script> tag is shown as text and never runs, and saves a screenshot (set
XPUBENCH_SCREENSHOT=path to keep a copy). Skipped only when no Chromium is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from bench.model import results
from reports import write_report

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y chromium); .ci/run installs it"
)

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]
XSS = "<script>alert(1)</script>"

# Runs first in <head> of a copy of the report: records script errors, failed loads, CSP
# violations and alert() calls, then on load writes what it found into the DOM for --dump-dom.
PROBE = """<script>
(function () {
  var log = [];
  window.alert = function (m) { log.push("alert called: " + m); };
  window.addEventListener("error", function (e) {
    log.push("error: " + (e.message || (e.target && (e.target.src || e.target.tagName))));
  }, true);
  document.addEventListener("securitypolicyviolation", function (e) {
    log.push("csp: " + e.violatedDirective + " " + e.blockedURI);
  });
  window.addEventListener("load", function () {
    var imgs = Array.prototype.slice.call(document.images);
    function shown(el) {
      var r = el.getBoundingClientRect(), st = window.getComputedStyle(el);
      return r.width > 0 && r.height > 0 && st.visibility !== "hidden" && st.display !== "none";
    }
    var head = document.getElementById("headline");
    var first = document.querySelector("main > section");
    var configs = Array.prototype.slice.call(document.querySelectorAll("section[id^='configs-']")).map(function (s) {
      var tables = Array.prototype.slice.call(s.querySelectorAll("table"));
      return {id: s.id, tables: tables.length, shown: shown(s) && tables.every(shown),
              best: s.innerText.indexOf("\u2605 best") >= 0};
    });
    var out = {
      images: imgs.length,
      widths: imgs.map(function (i) { return i.complete ? i.naturalWidth : -1; }),
      log: log,
      height: document.documentElement.scrollHeight,
      label_shown: document.body.innerText.indexOf(LABEL) >= 0,
      headline: head ? {first: first === head, shown: shown(head), text: head.innerText,
                        top: head.getBoundingClientRect().top} : null,
      configs: configs
    };
    var pre = document.createElement("pre");
    pre.id = "xpubench-probe";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  });
})();
</script>"""


def chromium(args, user_dir, timeout=120):
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={user_dir}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def console_lines(stderr: str) -> list[str]:
    """Console messages the page produced (chromium logs them as INFO:CONSOLE with --enable-logging)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_report_of_real_results_renders_in_chromium(lorenz_quick_result, tmp_path):
    result, path = lorenz_quick_result
    evil = results.save(result.replace(machine={**result.machine, "label": XSS}), tmp_path / "evil.json")
    report = write_report([str(path), str(evil)], tmp_path / "report.html")
    html = report.read_text()
    n_images = len(re.findall(r"<img ", html))
    assert n_images >= 5  # speedup, CPU/wall, timelines of each run, machine comparison

    policy = "script-src 'none'"
    assert html.count(policy) == 1
    probed = html.replace(policy, "script-src 'unsafe-inline'").replace(
        "<head>", "<head>\n" + PROBE.replace("LABEL", json.dumps(XSS).replace("</", "<\\/")), 1)
    probe_file = tmp_path / "probed.html"
    probe_file.write_text(probed)

    run = chromium(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom",
                    probe_file.as_uri()], tmp_path / "profile-1")
    assert run.returncode == 0, run.stderr[-2000:]
    m = re.search(r'<pre id="xpubench-probe">(.*?)</pre>', run.stdout, re.S)
    assert m, "the probe did not run: " + run.stdout[-500:]
    found = json.loads(m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    assert found["images"] == n_images
    assert all(w > 0 for w in found["widths"]), found["widths"]
    assert found["log"] == []
    assert found["label_shown"], "the <script> label should be visible as text"
    # the headline block opens the page, visible in the first screen; each per-configuration table shows
    head = found["headline"]
    assert head and head["first"] and head["shown"] and head["top"] < 800, head
    assert "Is it worth it?" in head["text"] and "2 processes:" in head["text"] and "lorenz (quick)" in head["text"]
    assert [c["id"] for c in found["configs"]] == ["configs-lorenz"]
    assert all(c["shown"] and c["tables"] >= 1 and c["best"] for c in found["configs"]), found["configs"]
    assert console_lines(run.stderr) == []

    # the report as shipped (its CSP forbids every script): no console output, and a screenshot
    shot = tmp_path / "report.png"
    height = min(max(int(found["height"]), 800), 16000)
    run = chromium(["--enable-logging=stderr", "--v=0", f"--window-size=1280,{height}",
                    f"--screenshot={shot}", report.as_uri()], tmp_path / "profile-2")
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_lines(run.stderr) == []
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and int.from_bytes(data[16:20], "big") == 1280
    keep = os.environ.get("XPUBENCH_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
    print(f"\nscreenshot: {keep or shot} (1280x{height})")
