"""Check that a downloaded pull-request report artifact is plain data before CML posts it.

Run by the trusted comment workflow (.github/workflows/pr-comment.yml, `make
report-artifact-check`) on the `model-report` artifact of a pull request, possibly from a fork.
`cml comment update --publish report.md` uploads every local file the markdown references, so a
crafted report.md could point at a file outside the artifact (a token, the runner's environment)
and have it published. This script allows only:

- regular files (no symlinks) named *.md, *.html, *.json or *.png, 20 MB in all;
- a report.md under GitHub's comment limit (65,536 characters);
- link and image targets (markdown, reference-style and HTML src/href) that are http(s) URLs,
  #anchors, or relative paths to a .png inside the artifact (no "..", no absolute path).

Standard library only: the trusted job runs it with the runner's python3, never with the pull
request's code or dependencies. Exit 0 when clean, 1 listing every problem, 2 on bad usage.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path, PurePosixPath

ALLOWED_SUFFIXES = {".md", ".html", ".json", ".png"}
MAX_TOTAL_BYTES = 20_000_000
MAX_COMMENT_CHARS = 65_536
TARGETS = (
    re.compile(r"\]\(\s*<?([^)\s>]+)"),  # [text](target) and ![alt](target)
    re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE),  # [ref]: target
    re.compile(r"""\b(?:src|href|srcset|poster|data)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE),
)
REMOTE = re.compile(r"^https?://", re.IGNORECASE)


def problems(directory: Path) -> list[str]:
    """Every reason not to publish the artifact in ``directory`` (empty when it is clean)."""
    if not directory.is_dir():
        return [f"{directory}: not a directory"]
    found = []
    total = 0
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if path.is_symlink():
            found.append(f"{rel}: is a symbolic link")
        elif path.is_file():
            total += path.stat().st_size
            if path.suffix.lower() not in ALLOWED_SUFFIXES:
                found.append(
                    f"{rel}: unexpected file type (allowed: {', '.join(sorted(ALLOWED_SUFFIXES))})"
                )
    if total > MAX_TOTAL_BYTES:
        found.append(f"the artifact holds {total:,} bytes (limit {MAX_TOTAL_BYTES:,})")
    report = directory / "report.md"
    if report.is_symlink() or not report.is_file():
        return [*found, "report.md: missing"]
    text = report.read_text(encoding="utf-8", errors="replace")
    if len(text) > MAX_COMMENT_CHARS:
        found.append(
            f"report.md: {len(text):,} characters (GitHub's limit is {MAX_COMMENT_CHARS:,})"
        )
    for pattern in TARGETS:
        for match in pattern.finditer(text):
            target = match.group(1)
            if REMOTE.match(target) or target.startswith("#"):
                continue
            problem = _local_target_problem(directory, target)
            if problem:
                found.append(f"report.md: link target {target!r}: {problem}")
    return found


def _local_target_problem(directory: Path, target: str) -> str | None:
    if ":" in target.split("/")[0] or target.startswith(("/", "\\", "~")):
        return "only http(s) URLs, #anchors and relative paths are allowed"
    path = PurePosixPath(target.split("#")[0].split("?")[0])
    if ".." in path.parts or "\\" in target:
        return "leaves the artifact"
    if path.suffix.lower() != ".png":
        return "a local target must be a .png image"
    local = directory / Path(*path.parts)
    if local.is_symlink() or not local.is_file():
        return "no such image in the artifact"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0]:
        print("usage: check_report_artifact.py DIRECTORY", file=sys.stderr)
        return 2
    found = problems(Path(argv[0]))
    if found:
        print(f"{argv[0]}: not publishing this report artifact:", file=sys.stderr)
        for problem in found:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{argv[0]}: report artifact is plain data")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
