"""Open an HTML page in a real headless browser (Debian's ``chromium``) and say what went wrong.

The page is copied with a small script inserted first in ``<head>``: after the ``load`` event it
writes, into a ``<pre id="yoloattn-check">``, how many images the page has and which did not decode
(``complete`` and a non-zero ``naturalWidth``) plus every script error. Chromium dumps the DOM after
running the page (``--dump-dom``); its console messages reach stderr with ``--enable-logging``. A
screenshot shows that something was painted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(e.message || ((e.target && e.target.tagName) + " failed to load")), true);
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const pre = document.createElement("pre");
  pre.id = "yoloattn-check";
  pre.textContent = JSON.stringify({images: images.length, title: document.title,
    broken: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt), errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM if (path := shutil.which(name))), None)


def _chromium(binary: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=10000",
             "--enable-logging=stderr", "--v=0"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120)


def check_page(page: Path, scratch: Path) -> dict:
    """{"images": n, "broken": [alt, ...], "errors": [...], "console": [...], "painted": bool, "title": str}."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium not found")
    probe = scratch / f"probe-{page.name}"
    probe.write_text(page.read_text().replace("<head>", "<head>" + _PROBE, 1))
    dumped = _chromium(binary, "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="yoloattn-check">(.*?)</pre>', dumped.stdout, re.S)
    if not found:
        raise RuntimeError(f"the page's load event never fired; chromium said: {dumped.stderr[-2000:]}")
    import html

    result = json.loads(html.unescape(found.group(1)))
    result["console"] = [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line]
    shot = scratch / "screenshot.png"
    _chromium(binary, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri())
    from matplotlib.image import imread

    pixels = imread(shot) if shot.is_file() else None
    result["painted"] = pixels is not None and float(pixels.std()) > 0.01
    return result
