"""Look at a rendered report the way a reviewer does: headless Chromium at 1,200 px.

    python scripts/report_browser.py REPORT_DIR [REPORT_DIR ...] [--out DIR]

For each directory holding ``report.html`` (and its ``img/``), measures the page in Debian's
``chromium`` and takes screenshots: ``<name>.png`` as it opens (collapsed sections closed) and
``<name>-open.png`` with every section open. Prints the measurements and exits 1 when any check
fails:

- the verdict and the metric table end within the first 900 px;
- every image loads and is at most 780 px wide (the width GitHub shows a comment at);
- no table is wider than its column (GitHub clips it behind a scroll bar).

Chromium's own ``--dump-dom`` and ``--screenshot`` (no driver, no extra package): the page gets a
script that measures it once it has loaded and writes the numbers into the DOM that Chromium
dumps. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

WIDTH, FIRST_SCREEN, COLUMN = 1200, 900, 780
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
MEASURE = """
<script>
window.addEventListener("load", () => {
  const top = (e) => e ? Math.round(e.getBoundingClientRect().bottom + scrollY) : null;
  const closedHeight = document.documentElement.scrollHeight;
  const verdict = [...document.querySelectorAll("p")].find(
    (p) => /promoted if merged|In production/.test(p.textContent));
  const heading = [...document.querySelectorAll("h3")].find((h) => h.id === "metrics");
  let metrics = null;
  for (let e = heading && heading.nextElementSibling; e; e = e.nextElementSibling) {
    if (e.tagName === "TABLE") { metrics = e; break; }
    if (e.tagName === "H3") break;
  }
  const firstScreen = {verdict: top(verdict), metrics: top(metrics)};
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const images = [...document.images].map((i) => ({
    src: i.getAttribute("src"), loaded: i.complete && i.naturalWidth > 0,
    naturalWidth: i.naturalWidth}));
  const tables = [...document.querySelectorAll("table")].map((t, n) => ({
    index: n, scrollWidth: t.scrollWidth, clientWidth: t.clientWidth,
    head: t.rows[0] ? t.rows[0].textContent.trim().replace(/\\s+/g, " ").slice(0, 60) : ""}));
  const out = document.createElement("pre");
  out.id = "report-measure";
  out.textContent = JSON.stringify({firstScreen, images, tables, closedHeight,
    openHeight: document.documentElement.scrollHeight, width: innerWidth});
  document.body.appendChild(out);
});
</script>
"""
RESULT = re.compile(r'<pre id="report-measure">(.*?)</pre>', re.DOTALL)


class BrowserError(RuntimeError):
    """Chromium is missing or did not render the page."""


@dataclass
class Page:
    name: str
    measures: dict[str, object]
    screenshots: list[Path] = field(default_factory=list)

    def problems(self) -> list[str]:
        m = self.measures
        found = []
        first = m["firstScreen"]
        assert isinstance(first, dict)
        for what in ("verdict", "metrics"):
            bottom = first.get(what)
            if bottom is None:
                found.append(f"{self.name}: no {what} on the page")
            elif bottom > FIRST_SCREEN:
                found.append(f"{self.name}: the {what} ends at {bottom} px, below {FIRST_SCREEN}")
        for image in m["images"]:  # type: ignore[attr-defined]
            if not image["loaded"]:
                found.append(f"{self.name}: image {image['src']} does not load")
            elif image["naturalWidth"] > COLUMN:
                found.append(
                    f"{self.name}: image {image['src']} is {image['naturalWidth']} px wide "
                    f"(more than {COLUMN})"
                )
        for t in m["tables"]:  # type: ignore[attr-defined]
            if t["scrollWidth"] > t["clientWidth"] + 1:
                found.append(
                    f"{self.name}: table {t['index']} ({t['head']!r}) is {t['scrollWidth']} px "
                    f"wide in a {t['clientWidth']} px column"
                )
        return found


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], profile: Path) -> str:
    binary = chromium()
    if binary is None:
        raise BrowserError("chromium is not installed (Debian: apt-get install chromium)")
    done = subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BrowserError(f"chromium failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return done.stdout


def look(report_dir: Path, name: str, out: Path, screenshots: bool = True) -> Page:
    """Measure ``report_dir/report.html`` and take its screenshots into ``out``."""
    report_dir = report_dir.resolve()  # a file:// URI needs an absolute path
    page = report_dir / "report.html"
    if not page.is_file():
        raise BrowserError(f"{page}: not found (run `flightdelay report` first)")
    out.mkdir(parents=True, exist_ok=True)
    html = page.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="report-browser-") as tmp:
        # Beside report.html, so img/ resolves as it does for the page itself.
        probe = report_dir / ".report-measure.html"
        opened = report_dir / ".report-open.html"
        probe.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
        opened.write_text(html.replace("<details>", "<details open>"), encoding="utf-8")
        try:
            dom = _run(
                [f"--window-size={WIDTH},{FIRST_SCREEN}", "--dump-dom", probe.as_uri()],
                Path(tmp) / "measure",
            )
            found = RESULT.search(dom)
            if found is None:
                raise BrowserError(f"{page}: the page did not report its measurements")
            import html as html_lib

            measures = json.loads(html_lib.unescape(found.group(1)))
            shots = []
            views = ((page, "", "closedHeight"), (opened, "-open", "openHeight"))
            for source, suffix, height in views if screenshots else ():
                target = out / f"{name}{suffix}.png"
                _run(
                    [
                        f"--window-size={WIDTH},{max(FIRST_SCREEN, int(measures[height]) + 40)}",
                        f"--screenshot={target}",
                        source.as_uri(),
                    ],
                    Path(tmp) / f"shot{suffix}",
                )
                shots.append(target)
        finally:
            probe.unlink(missing_ok=True)
            opened.unlink(missing_ok=True)
    return Page(name, measures, shots)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("reports", nargs="+", type=Path, help="directories holding report.html")
    parser.add_argument("--out", type=Path, default=Path(".artifacts/report-browser"))
    args = parser.parse_args(argv)
    failed = False
    try:
        for directory in args.reports:
            name = directory.resolve().parent.parent.name if directory.name == "report" else ""
            result = look(directory, name or directory.name, args.out)
            m = result.measures
            print(
                f"{result.name}: verdict ends at {m['firstScreen']['verdict']} px, metrics at "  # type: ignore[index]
                f"{m['firstScreen']['metrics']} px; page {m['closedHeight']} px as it opens, "  # type: ignore[index]
                f"{m['openHeight']} px open; {len(m['images'])} images, "  # type: ignore[arg-type]
                f"{len(m['tables'])} tables"  # type: ignore[arg-type]
            )
            for shot in result.screenshots:
                print(f"  screenshot: {shot.resolve()}")
            for problem in result.problems():
                failed = True
                print(f"  FAIL {problem}")
    except BrowserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
