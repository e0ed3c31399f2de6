"""Post a pull request's `model-report` artifact as its comment without letting CML read any file
the artifact's markdown names.

Run by the trusted comment workflow (.github/workflows/pr-comment.yml: `make report-artifact-check`,
then `make report-comment`) on an artifact that a pull request, possibly from a fork, wrote. The
artifact is untrusted data. `cml comment update --publish` would upload every local file that
CML's markdown parser finds in report.md (`path.resolve(dirname(md), url)`, query and fragment
kept), so any check that reads the markdown differently from CML can be walked around. This
script therefore never lets CML see the artifact's markdown or choose a file:

1. It opens only ``report.md`` and the ``img/*.png`` that the report shows, each with O_NOFOLLOW
   through a directory descriptor (no symlink is followed, nothing outside the artifact is
   reachable), and keeps the bytes in memory: regular files, PNG signature and IHDR chunk, size
   caps, safe names. Anything else in the artifact that is not a plain file or directory (a
   symlink, a FIFO) refuses the whole artifact.
2. It writes those bytes to a staging directory of its own and runs ``cml asset publish FILE`` on
   each copy (an argv list, no shell); CML prints the URL.
3. It composes the comment: every ``[``, ``]`` and ``<`` of the report becomes an HTML character
   reference, so the report's text can form no link, image, reference definition, autolink or
   raw HTML (CommonMark treats character references as literal text), except for three exact
   forms it re-emits itself: ``![alt](img/NAME.png)`` with the published URL, ``[text](https://…)``
   and the report's attribute-less tags (``<details>``, ``<summary>``, ``<code>``, ``<sub>``, …).
4. It posts that file with ``cml comment update --no-publish``: CML reads no other file.

Standard library only: the trusted job runs it with the runner's python3, never with the pull
request's code or dependencies. Exit 0 when posted (or, with --check, when the artifact is
usable), 1 when the artifact is refused (every problem on its own line, nothing published or
posted), 2 on bad usage or when CML fails.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import stat
import string
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPORT_NAME = "report.md"
IMAGE_DIR = "img"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_REPORT_BYTES = 60_000
MAX_PNG_BYTES = 2_000_000
MAX_IMAGES = 20
MAX_URL_CHARS = 400
MAX_COMMENT_CHARS = 65_536  # GitHub's limit for a comment body
WATERMARK_ALLOWANCE = 300  # what `cml comment update` appends (its watermark image)
MAX_DIMENSION = 10_000

# The three forms the report writes that the comment keeps as markup; all else is text.
IMAGE_TOKEN = re.compile(
    r"!\[(?P<alt>[A-Za-z0-9 _.,:-]{0,100})\]\(img/(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.png)\)"
)
LINK_TOKEN = re.compile(  # not after "!": a remote image is not a link the report may show
    r"(?<!!)\[(?P<text>[A-Za-z0-9 _.,:;/()+*'!?#%=-]{1,200})\]"
    r"\((?P<url>https://[A-Za-z0-9][A-Za-z0-9._~:/?#@!$&'*+,;=%-]{0,400})\)"
)
TAG_TOKEN = re.compile(r"</?(?:details|summary|code|sub|sup|b|strong|em|i)>|<br ?/?>")
TOKENS = re.compile(f"{IMAGE_TOKEN.pattern}|{LINK_TOKEN.pattern}|{TAG_TOKEN.pattern}")
CHARACTER_REFERENCES = {"[": "&#91;", "]": "&#93;", "<": "&lt;"}
# A one-line code span (backtick runs of equal length, not escaped); multi-line ones stay text.
CODE_SPAN = re.compile(r"(?<![`\\])(?P<ticks>`+)(?!`)(?P<code>[^\n]+?)(?<!`)(?P=ticks)(?!`)")
PUNCTUATION = frozenset(string.punctuation)
UNSAFE = re.compile("[][<]")
# What `cml asset publish` may print for the comment to use (asset.cml.dev or a self-hosted one).
PUBLISHED_URL = re.compile(r"https://[A-Za-z0-9][A-Za-z0-9._~:/?#@!$&*+,;=%-]*")

Runner = Callable[[Sequence[str]], str]  # runs `cml ARGV`, returns its stdout


class RefusedArtifact(Exception):  # noqa: N818 -- reads as the outcome it reports
    """The artifact is not plain data; ``problems`` lists every reason, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(dict.fromkeys(problems))  # a symlink is found by two checks
        super().__init__("; ".join(self.problems))


class CmlFailed(Exception):  # noqa: N818
    """`cml` exited non-zero or printed something that is not a URL."""


@dataclass(frozen=True)
class Artifact:
    """The only parts of the artifact the comment uses, as bytes read once."""

    report: str
    images: Mapping[str, bytes]  # safe name -> validated PNG bytes, in the report's order


# ---------------------------------------------------------------- pure core


def _segments(markdown: str) -> Iterator[tuple[bool, str]]:
    """``markdown`` cut into (is a one-line code span, text) pieces, in order."""
    position = 0
    for match in CODE_SPAN.finditer(markdown):
        yield False, markdown[position : match.start()]
        yield True, match["code"]
        position = match.end()
    yield False, markdown[position:]


def referenced_images(markdown: str) -> list[str]:
    """Names of the ``img/*.png`` the report shows with the exact image form, first use first."""
    names: dict[str, None] = {}
    for is_code, text in _segments(markdown):
        for match in () if is_code else IMAGE_TOKEN.finditer(text):
            names.setdefault(match["name"], None)
    return list(names)


def escape_text(text: str) -> str:
    """``text`` with every character that can open a link, image, definition or HTML escaped."""
    return UNSAFE.sub(lambda m: CHARACTER_REFERENCES[m.group()], text)


def code_html(code: str) -> str:
    """A code span as ``<code>`` whose every ASCII punctuation is a character reference.

    Inside a code span brackets are literal, so escaping them would show ``&#91;``; as raw HTML
    with references the text renders as written, and no character of it is markup.
    """
    if code.startswith(" ") and code.endswith(" ") and code.strip():
        code = code[1:-1]  # CommonMark strips one space from each side
    return "<code>" + "".join(f"&#{ord(c)};" if c in PUNCTUATION else c for c in code) + "</code>"


def compose(markdown: str, urls: Mapping[str, str]) -> str:
    """The comment body: ``markdown`` as text, its own plots at ``urls`` (name -> URL).

    A plot without a URL is named as text. Every link or image in the result is one of ``urls``
    or an https link the report wrote in the exact form; no other reference survives.
    """
    out: list[str] = []
    for is_code, text in _segments(markdown):
        if is_code:
            out.append(code_html(text))
            continue
        position = 0
        for match in TOKENS.finditer(text):
            out.append(escape_text(text[position : match.start()]))
            position = match.end()
            name = match["name"]
            if name is not None:
                url = urls.get(name)
                out.append(
                    f"![{match['alt']}]({url})"
                    if url is not None
                    else f"_(plot {code_html(name)}: in the {code_html('model-report')} artifact)_"
                )
            else:
                out.append(match.group())  # an https link or an attribute-less tag: as written
        out.append(escape_text(text[position:]))
    return "".join(out)


def png_problem(name: str, data: bytes) -> str | None:
    """Why ``data`` is not a PNG the comment may show, or None."""
    if len(data) > MAX_PNG_BYTES:
        return f"{IMAGE_DIR}/{name}: over {MAX_PNG_BYTES:,} bytes"
    if not data.startswith(PNG_SIGNATURE):
        return f"{IMAGE_DIR}/{name}: not a PNG (no PNG signature)"
    header = data[len(PNG_SIGNATURE) : len(PNG_SIGNATURE) + 8 + 13]
    if len(header) < 21 or header[4:8] != b"IHDR":
        return f"{IMAGE_DIR}/{name}: not a PNG (no IHDR chunk after the signature)"
    width, height = struct.unpack(">II", header[8:16])
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        return f"{IMAGE_DIR}/{name}: {width}x{height} pixels (limit {MAX_DIMENSION} a side)"
    return None


def published_url(output: str) -> str:
    """The URL `cml asset publish` printed, checked to be one an image may point at."""
    url = output.strip()
    if len(url) > MAX_URL_CHARS or not PUBLISHED_URL.fullmatch(url):
        raise CmlFailed(f"cml asset publish printed {url[:80]!r}, not an https URL")
    return url


# ---------------------------------------------------------------- edges: the artifact


def _open_dir(name: str, dir_fd: int | None) -> int:
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)


def _read_regular(name: str, dir_fd: int, limit: int) -> bytes | str:
    """The bytes of regular file ``name`` under ``dir_fd`` (no symlink), or why not."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return "is a symbolic link" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size > limit:
            return f"over {limit:,} bytes"
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(limit + 1)
        return data if len(data) <= limit else f"over {limit:,} bytes"
    finally:
        os.close(fd)


def _irregular_entries(directory: Path) -> list[str]:
    """Everything under ``directory`` that is neither a regular file nor a directory."""
    found = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(root, name)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                found.append(f"{path.relative_to(directory).as_posix()}: is a symbolic link")
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                found.append(f"{path.relative_to(directory).as_posix()}: not a regular file")
    return found


def read_artifact(directory: Path) -> Artifact:
    """Read and validate the artifact in ``directory``; raise RefusedArtifact listing problems."""
    try:
        top = _open_dir(str(directory), None)
    except OSError as exc:
        raise RefusedArtifact([f"{directory}: not a directory ({exc.strerror})"]) from None
    try:
        problems = _irregular_entries(directory)
        report = _read_regular(REPORT_NAME, top, MAX_REPORT_BYTES)
        if isinstance(report, str):
            raise RefusedArtifact([*problems, f"{REPORT_NAME}: {report}"])
        try:
            text = report.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RefusedArtifact([*problems, f"{REPORT_NAME}: not UTF-8 ({exc.reason})"]) from None
        names = referenced_images(text)
        if len(names) > MAX_IMAGES:
            problems.append(f"{REPORT_NAME}: shows {len(names)} plots (limit {MAX_IMAGES})")
        images = _read_images(top, names, problems)
        if problems:
            raise RefusedArtifact(problems)
        return Artifact(report=text, images=images)
    finally:
        os.close(top)


def _read_images(top: int, names: Iterable[str], problems: list[str]) -> dict[str, bytes]:
    names = list(names)
    if not names:
        return {}
    try:
        img = _open_dir(IMAGE_DIR, top)
    except FileNotFoundError:
        problems.extend(f"{IMAGE_DIR}/{name}: missing" for name in names)
        return {}
    except OSError:
        problems.append(f"{IMAGE_DIR}: not a directory")
        return {}
    images = {}
    try:
        for name in names:
            data = _read_regular(name, img, MAX_PNG_BYTES)
            if isinstance(data, str):
                problems.append(f"{IMAGE_DIR}/{name}: {data}")
            elif problem := png_problem(name, data):
                problems.append(problem)
            else:
                images[name] = data
    finally:
        os.close(img)
    return images


def check(directory: Path) -> Artifact:
    """Read the artifact and make sure its comment fits, with the longest URLs CML may print."""
    artifact = read_artifact(directory)
    widest = compose(artifact.report, {n: "h" * MAX_URL_CHARS for n in artifact.images})
    if len(widest) + WATERMARK_ALLOWANCE > MAX_COMMENT_CHARS:
        raise RefusedArtifact(
            [f"{REPORT_NAME}: the comment would exceed GitHub's {MAX_COMMENT_CHARS:,} characters"]
        )
    return artifact


# ---------------------------------------------------------------- edges: CML


def run_cml(argv: Sequence[str]) -> str:
    """Run `cml` with ``argv`` (no shell); its stdout, or CmlFailed naming the command."""
    try:
        done = subprocess.run(
            ["cml", *argv], capture_output=True, text=True, check=False, timeout=300
        )
    except FileNotFoundError:
        raise CmlFailed("cml is not on PATH (the workflow installs it with setup-cml)") from None
    if done.returncode != 0:
        raise CmlFailed(
            f"cml {' '.join(argv[:2])} exited {done.returncode}: {done.stderr.strip()[-500:]}"
        )
    return done.stdout


def post(directory: Path, target: str, watermark_title: str, cml: Runner = run_cml) -> str:
    """Publish the artifact's validated plots, post the composed comment; return its body."""
    artifact = check(directory)
    with tempfile.TemporaryDirectory(prefix="report-comment-") as staging:
        urls = {}
        for name, data in artifact.images.items():
            copy = Path(staging, name)
            copy.write_bytes(data)
            urls[name] = published_url(
                cml(["asset", "publish", "--mime-type", "image/png", str(copy)])
            )
        body = compose(artifact.report, urls)
        comment = Path(staging, "comment.md")
        comment.write_text(body, encoding="utf-8")
        cml(
            [
                "comment",
                "update",
                f"--target={target}",
                f"--watermark-title={watermark_title}",
                "--no-publish",
                str(comment),
            ]
        )
    return body


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="report_comment.py",
        description="Post a model-report artifact as a pull-request comment (see the docstring).",
    )
    parser.add_argument("directory", type=Path, help="the downloaded model-report artifact")
    parser.add_argument("--check", action="store_true", help="validate only; run no cml")
    parser.add_argument("--target", help="CML comment target, e.g. pr/42")
    parser.add_argument("--watermark-title", default="flight-delay report")
    args = parser.parse_args(argv)
    if not args.check and not (args.target and re.fullmatch(r"pr/[0-9]+", args.target)):
        parser.error("--target pr/<number> is required unless --check")
    try:
        if args.check:
            artifact = check(args.directory)
            print(
                f"{args.directory}: report artifact is plain data "
                f"({len(artifact.images)} plots to publish)"
            )
        else:
            post(args.directory, args.target, args.watermark_title)
            print(f"{args.directory}: posted to {args.target}")
    except RefusedArtifact as exc:
        print(f"{args.directory}: not publishing this report artifact:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except CmlFailed as exc:
        print(f"report comment: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
