"""Headless Chromium for the report tests: a screenshot, and in-page checks read back from the DOM.

No driver or DevTools client is needed: the checks are a script appended to a copy of the page,
which writes its findings as JSON into the page; `chromium --dump-dom` prints the page after the
scripts ran, and the JSON is read back from it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
# CI sets this: there a missing browser is a failure, not a skip.
REQUIRED = os.environ.get("BENCH_REQUIRE_BROWSER") == "1"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--no-first-run", "--mute-audio"]

# After load (and after the page's own script pinned the identifying columns): every image decodes;
# in every table, at the start and scrolled fully right, each pinned cell lies inside its scroll box
# and shows all its text; the page itself is not wider than the window.
CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => setTimeout(() => {
  const out = {images: [], tables: 0, scrolling: 0, pinned_cells: 0, clipped: [], page_overflow_px: 0};
  for (const img of document.images) {
    // Drawn onto a canvas, a decoded image gives pixels that are not all the same (img.decode()
    // never settles under --dump-dom, so the load event and a draw stand in for it).
    let distinct = 0;
    if (img.complete && img.naturalWidth > 0) {
      const canvas = document.createElement("canvas");
      canvas.width = Math.min(img.naturalWidth, 600);
      canvas.height = Math.max(1, Math.round(img.naturalHeight * canvas.width / img.naturalWidth));
      const context = canvas.getContext("2d");
      context.drawImage(img, 0, 0, canvas.width, canvas.height);
      distinct = new Set(new Uint32Array(context.getImageData(0, 0, canvas.width, canvas.height).data.buffer)).size;
    }
    out.images.push({width: img.naturalWidth, height: img.naturalHeight, distinct_colours: distinct});
  }
  for (const table of document.querySelectorAll("table.data")) {
    out.tables += 1;
    const box = table.closest(".scroll");
    const pinned = Number(table.dataset.pinned || 0);
    if (box.scrollWidth > box.clientWidth) out.scrolling += 1;
    for (const position of [0, box.scrollWidth]) {
      box.scrollLeft = position;
      const edge = box.getBoundingClientRect();
      for (const row of table.rows) {
        for (let i = 0; i < pinned && i < row.cells.length; i++) {
          const cell = row.cells[i], rect = cell.getBoundingClientRect();
          out.pinned_cells += 1;
          if (rect.left < edge.left - 1 || rect.right > edge.right + 1 || cell.scrollWidth > cell.clientWidth + 1)
            out.clipped.push({table: table.id, scrolled: position > 0, text: cell.textContent});
        }
      }
    }
    box.scrollLeft = 0;
  }
  out.page_overflow_px = document.documentElement.scrollWidth - window.innerWidth;
  const pre = document.createElement("pre");
  pre.id = "browser-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 0));
</script>
"""


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=timeout, check=True)


def screenshot(page: Path, out: Path, width: int, height: int) -> Path:
    _run([f"--window-size={width},{height}", f"--screenshot={out}", page.resolve().as_uri()])
    return out


def check_page(page: Path, workdir: Path, width: int, height: int = 1000) -> dict:
    """Run CHECK_SCRIPT in ``page`` (a copy with the script appended) at this window size."""
    copy = workdir / f"checked-{page.name}"
    copy.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    # The virtual-time budget lets the load handlers run before the DOM is dumped.
    dom = _run([f"--window-size={width},{height}", "--virtual-time-budget=10000", "--dump-dom",
                copy.resolve().as_uri()]).stdout
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom, re.S)
    if not found:
        raise AssertionError(f"the check script wrote nothing; page dumped: {dom[-500:]}")
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
