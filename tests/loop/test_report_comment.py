"""scripts/report_comment.py: what the trusted comment job lets CML read and post.

The job (.github/workflows/pr-comment.yml: `make report-artifact-check`, `make report-comment`)
gets a `model-report` artifact that a pull request, possibly a hostile fork, wrote. These tests run
the make targets on a corpus of hostile artifacts with the recording stand-in of `cml`
(tests/stand_ins/cml) first on PATH, and assert on what it was called with: nothing outside the
artifact is ever uploaded (only the bytes of the artifact's own valid PNGs, from copies the script
made), the comment is posted with --no-publish, and the posted markdown, read by two markdown
parsers, holds no link or image that is not a published URL or an https link.
"""

from __future__ import annotations

import hashlib
import html.parser
import importlib.util
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markdown as python_markdown
import pytest
import yaml
from markdown_it import MarkdownIt

from flightdelay.loop import report

REPO_ROOT = Path(__file__).resolve().parents[2]
STAND_INS = REPO_ROOT / "tests" / "stand_ins"
# The trusted job runs the script with the runner's python3, never the project's dependencies:
# here the interpreter the venv was made from, isolated and without site-packages (-I -S), so a
# stray third-party import fails the tests. It is also named outright, as `make PYTHON=...` allows:
# the Makefile's probe for the newest python3.x costs ~0.3 s per make run where pyenv shims answer.
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"
SCRIPT_PYTHON = f"{BASE_PYTHON} -I -S" if BASE_PYTHON.is_file() else sys.executable
ALLOWED_TAG = re.compile(r"</?(?:details|summary|code|sub|sup|b|strong|em|i|br ?/?)>")


def load_script() -> Any:
    path = REPO_ROOT / "scripts" / "report_comment.py"
    spec = importlib.util.spec_from_file_location("report_comment", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rc = load_script()


def png(width: int = 2, height: int = 2, payload: bytes = b"") -> bytes:
    """A valid PNG header (signature, IHDR, IEND); ``payload`` makes its bytes distinct."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    text = chunk(b"tEXt", b"c\x00" + payload) if payload else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + text + chunk(b"IEND", b"")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


OWN_PNG = png(payload=b"the report's own plot")
SECRET_PNG = png(payload=b"a secret outside the artifact")


@dataclass
class Job:
    """An artifact directory, a secret outside it and the stand-in's log."""

    artifact: Path
    outside: Path
    log: Path

    def write_report(self, markdown: str) -> None:
        (self.artifact / "report.md").write_text(markdown, encoding="utf-8")

    def make(self, target: str, pr: str = "7") -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PATH": f"{STAND_INS}{os.pathsep}{os.environ['PATH']}",
            "CML_STAND_IN_LOG": str(self.log),
            "REPORT_DIR": str(self.artifact),
            "PR_NUMBER": pr,
            "PYTHON": SCRIPT_PYTHON,
        }
        return subprocess.run(
            ["make", "--no-print-directory", "-C", str(REPO_ROOT), target],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.is_file():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def job(tmp_path: Path) -> Job:
    artifact = tmp_path / "model-report"
    (artifact / "img").mkdir(parents=True)
    (artifact / "img" / "evaluation-roc.png").write_bytes(OWN_PNG)
    (artifact / "report.html").write_text("<p>preview</p>")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(SECRET_PNG)
    (outside / "token").write_text("ghs_secret\n")
    return Job(artifact=artifact, outside=outside, log=tmp_path / "cml.jsonl")


# ---------------------------------------------------------------- what the posted markdown holds


class _References(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in {"src", "href", "srcset", "poster", "data", "action", "background"}:
                self.found.append((tag, name, value or ""))


def references(markdown_text: str) -> list[tuple[str, str, str]]:
    """(tag, attribute, URL) of every reference two CommonMark-ish parsers find in the text."""
    refs = []
    for rendered in (
        MarkdownIt("commonmark").enable("table").render(markdown_text),
        python_markdown.markdown(markdown_text, extensions=["tables", "fenced_code"]),
    ):
        parser = _References()
        parser.feed(rendered)
        refs.extend(parser.found)
    return refs


def raw_html(markdown_text: str) -> list[str]:
    """Every raw HTML fragment markdown-it passes through (inline and block)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown_text)
    found = [t.content for t in tokens if t.type == "html_block"]
    for token in tokens:
        found += [c.content for c in token.children or [] if c.type == "html_inline"]
    return found


def assert_posted_safely(job: Job) -> str:
    """Nothing outside the artifact was uploaded; the comment names only published URLs."""
    calls = job.calls()
    published = [c for c in calls if c["command"] == "asset publish"]
    comments = [c for c in calls if c["command"].startswith("comment")]
    assert len(comments) == 1, calls
    (comment,) = comments
    assert comment["publish"] is False, "CML must not read local files named in the comment"
    assert not Path(comment["path"]).is_relative_to(job.artifact)
    for call in published:
        assert call["sha256"] == sha(OWN_PNG), f"uploaded bytes that are not the plot: {call}"
        assert call["resolved"] == str(Path(call["path"]).absolute()), "published a symlink"
        assert not Path(call["path"]).is_relative_to(job.artifact), "CML read the artifact itself"
    urls = {c["url"] for c in published}
    posted = comment["markdown"]
    for tag, attribute, url in references(posted):
        if tag == "img":
            assert url in urls, f"image {url!r} is not a URL the job published"
        else:
            assert url.startswith("https://"), f"<{tag} {attribute}={url!r}> is a local reference"
    for fragment in raw_html(posted):
        leftover = ALLOWED_TAG.sub("", fragment)
        assert "<" not in leftover, f"raw HTML {fragment!r} is not one of the report's plain tags"
    return posted


# ---------------------------------------------------------------- the corpus


REL = "../outside"  # the secret's directory, relative to the artifact
HOSTILE_MARKDOWN = {
    "query suffix": "![q](img/evaluation-roc.png?/../../{REL}/secret.png)",
    "fragment suffix": "![f](img/evaluation-roc.png#/../../../../../../../proc/self/environ)",
    "query suffix on a link": "[l](img/evaluation-roc.png?/../../{REL}/token)",
    "absolute path": "![a](/etc/passwd) ![b]({OUT}/secret.png)",
    "parent path": "![p](../outside/secret.png) ![p2](img/../../outside/secret.png)",
    "definition in a block quote": "> [r]: /proc/self/environ\n\n![r][r] [x][r]",
    "definition in a list": "- [d]: ../../../../../../../etc/passwd\n\n[see][d]",
    "definition nested in quote and list": "> - > [n]: {OUT}/token\n\n![n]",
    "escaped brackets": "\\[x](/etc/passwd) ![a\\](img/evaluation-roc.png)](/etc/passwd)",
    "escaped bang before a plot": "\\![roc](img/evaluation-roc.png) x\\\\![y](/etc/passwd)",
    "entities": "![e](&#47;etc&#47;passwd) [e2](&#x2F;proc&#x2F;self&#x2F;environ) "
    "&#91;e3&#93;(/etc/passwd) &lbrack;e4&rbrack;(/etc/passwd)",
    "percent-encoding": "![pc](%2Fetc%2Fpasswd) ![pc2](img/..%2F..%2F{REL}%2Fsecret.png)",
    "angle-bracket destination": '![ab](</etc/passwd>) [ab2](<{REL}/token> "t")',
    "angle-bracket destination with spaces": "![s](<img/evaluation-roc.png /../../{REL}/token>)",
    "link title": "[t](/etc/passwd \"title\") ![t2](/etc/passwd 'x')",
    "nested image in link": "[![roc](img/evaluation-roc.png)](/proc/self/environ)",
    "footnote": "text[^1]\n\n[^1]: /etc/passwd",
    "autolink": "<file:///etc/passwd> <../outside/token>",
    "raw HTML img": '<img src="/etc/passwd"> <IMG SRC=../outside/secret.png>',
    "raw HTML a and picture": '<a href="/proc/self/environ">x</a>'
    '<picture><source srcset="/etc/passwd"></picture>',
    "HTML block": '<div>\n<img src="{OUT}/secret.png">\n</div>',
    "HTML comment hiding a link": "<!-- ![c](/etc/passwd) -->",
    "data URI image": "![d](data:image/png;base64,iVBORw0KGgo=)",
    "remote image": "![r](https://evil.example/pixel.png)",
    "forged CML watermark": (
        '![](https://cml.dev/watermark.png#ab "CML watermark flight-delay report")'
    ),
    "details with attributes": '<details open ontoggle="x"><summary>s</summary>\n\n</details>',
    "backslash at line end": "a\\\n[b](/etc/passwd)",
    "code span around a plot": "`![roc](img/evaluation-roc.png)` and ``[x](</etc/passwd>)``",
    "image named with shell characters": "![s](img/$(touch pwned).png) ![t](img/a;b.png) "
    "![u](img/`id`.png) ![v](img/x'y.png)",
    "image outside img/": "![o](report.html) ![o2](./img/evaluation-roc.png)",
    "CRLF and NUL": "![c](img/evaluation-roc.png)\r\n[n](/etc/passwd\x00)\r\n",
}


def test_corpus_cases_are_distinct() -> None:
    assert len(set(HOSTILE_MARKDOWN.values())) == len(HOSTILE_MARKDOWN)


@pytest.mark.parametrize("case", sorted(HOSTILE_MARKDOWN))
def test_report_comment_hostile_markdown_uploads_nothing_outside(job: Job, case: str) -> None:
    hostile = HOSTILE_MARKDOWN[case].replace("{REL}", REL).replace("{OUT}", str(job.outside))
    for name in ("$(touch pwned).png", "a;b.png", "`id`.png", "x'y.png"):
        (job.artifact / "img" / name).write_bytes(SECRET_PNG)
    job.write_report(f"## flight-delay report\n\n![roc](img/evaluation-roc.png)\n\n{hostile}\n")

    done = job.make("report-comment")

    assert done.returncode == 0, done.stderr
    posted = assert_posted_safely(job)
    assert "## flight-delay report" in posted
    assert not (REPO_ROOT / "pwned").exists()


def test_report_comment_publishes_each_plot_once_from_a_copy(job: Job) -> None:
    (job.artifact / "img" / "drift-late_rate.png").write_bytes(OWN_PNG)
    job.write_report(
        "![roc](img/evaluation-roc.png)\n![late rate](img/drift-late_rate.png)\n"
        "![roc again](img/evaluation-roc.png)\n"
    )

    assert job.make("report-comment").returncode == 0

    published = [c for c in job.calls() if c["command"] == "asset publish"]
    assert [Path(c["path"]).name for c in published] == [
        "evaluation-roc.png",
        "drift-late_rate.png",
    ]
    assert all(c["argv"][:4] == ["asset", "publish", "--mime-type", "image/png"] for c in published)
    posted = assert_posted_safely(job)
    roc, late = (c["url"] for c in published)
    assert posted == f"![roc]({roc})\n![late rate]({late})\n![roc again]({roc})\n"


def test_report_comment_posts_to_the_pull_request_by_watermark(job: Job) -> None:
    job.write_report("## r\n")

    assert job.make("report-comment", pr="42").returncode == 0

    (comment,) = job.calls()
    assert comment["argv"][:5] == [
        "comment",
        "update",
        "--target=pr/42",
        "--watermark-title=flight-delay report",
        "--no-publish",
    ]


def test_report_comment_without_a_pr_number_says_how(job: Job) -> None:
    job.write_report("## r\n")

    done = job.make("report-comment", pr="42; id")

    assert done.returncode == 2
    assert "usage: make report-comment REPORT_DIR=dir PR_NUMBER=N" in done.stderr
    assert job.calls() == []


# ---------------------------------------------------------------- artifacts that are refused


def _symlink_png_to_passwd(job: Job) -> None:
    (job.artifact / "img" / "evaluation-roc.png").unlink()
    (job.artifact / "img" / "evaluation-roc.png").symlink_to("/etc/passwd")


def _symlink_png_to_environ(job: Job) -> None:
    (job.artifact / "img" / "evaluation-roc.png").unlink()
    (job.artifact / "img" / "evaluation-roc.png").symlink_to("/proc/self/environ")


def _symlink_png_to_secret_png(job: Job) -> None:
    (job.artifact / "img" / "evaluation-roc.png").unlink()
    (job.artifact / "img" / "evaluation-roc.png").symlink_to(job.outside / "secret.png")


def _symlink_img_dir(job: Job) -> None:
    (job.artifact / "img" / "evaluation-roc.png").unlink()
    (job.artifact / "img").rmdir()
    (job.outside / "evaluation-roc.png").write_bytes(SECRET_PNG)
    (job.artifact / "img").symlink_to(job.outside)


def _symlink_report(job: Job) -> None:
    (job.outside / "evil.md").write_text("![roc](img/evaluation-roc.png)\n")
    (job.artifact / "report.md").unlink()
    (job.artifact / "report.md").symlink_to(job.outside / "evil.md")


def _symlink_elsewhere(job: Job) -> None:
    (job.artifact / "report.html").unlink()
    (job.artifact / "report.html").symlink_to("/etc/passwd")


def _oversize_png(job: Job) -> None:
    data = png()
    (job.artifact / "img" / "evaluation-roc.png").write_bytes(
        data + b"\0" * (rc.MAX_PNG_BYTES + 1 - len(data))
    )


def _not_a_png(job: Job) -> None:
    (job.artifact / "img" / "evaluation-roc.png").write_text("root:x:0:0:root:/root:/bin/bash\n")


def _huge_dimensions(job: Job) -> None:
    (job.artifact / "img" / "evaluation-roc.png").write_bytes(png(width=2**31, height=1))


def _fifo(job: Job) -> None:
    (job.artifact / "img" / "evaluation-roc.png").unlink()
    os.mkfifo(job.artifact / "img" / "evaluation-roc.png")


def _missing_plot(job: Job) -> None:
    (job.artifact / "img" / "evaluation-roc.png").unlink()


def _oversize_report(job: Job) -> None:
    job.write_report("![roc](img/evaluation-roc.png)\n" + "x" * rc.MAX_REPORT_BYTES)


def _report_grows_past_the_comment_limit(job: Job) -> None:
    job.write_report("![roc](img/evaluation-roc.png)\n" + "[" * (rc.MAX_REPORT_BYTES - 40))


def _not_utf8(job: Job) -> None:
    (job.artifact / "report.md").write_bytes(b"![roc](img/evaluation-roc.png)\n\xff\xfe")


def _no_report(job: Job) -> None:
    (job.artifact / "report.md").unlink()


REFUSED = {
    "plot symlinked to /etc/passwd": (
        _symlink_png_to_passwd,
        "img/evaluation-roc.png: is a symbolic link",
    ),
    "plot symlinked to /proc/self/environ": (
        _symlink_png_to_environ,
        "img/evaluation-roc.png: is a symbolic link",
    ),
    "plot symlinked to a PNG outside": (
        _symlink_png_to_secret_png,
        "img/evaluation-roc.png: is a symbolic link",
    ),
    "img/ symlinked outside": (_symlink_img_dir, "img: is a symbolic link"),
    "report.md symlinked outside": (_symlink_report, "report.md: is a symbolic link"),
    "another file symlinked": (_symlink_elsewhere, "report.html: is a symbolic link"),
    "oversize PNG": (_oversize_png, f"img/evaluation-roc.png: over {rc.MAX_PNG_BYTES:,} bytes"),
    "not a PNG named .png": (_not_a_png, "img/evaluation-roc.png: not a PNG (no PNG signature)"),
    "absurd dimensions": (_huge_dimensions, "img/evaluation-roc.png: 2147483648x1 pixels"),
    "FIFO named .png": (_fifo, "img/evaluation-roc.png: not a regular file"),
    "plot missing": (_missing_plot, "img/evaluation-roc.png: missing"),
    "oversize report": (_oversize_report, f"report.md: over {rc.MAX_REPORT_BYTES:,} bytes"),
    "comment too long once escaped": (
        _report_grows_past_the_comment_limit,
        "report.md: the comment would exceed GitHub's 65,536 characters",
    ),
    "report not UTF-8": (_not_utf8, "report.md: not UTF-8"),
    "no report": (_no_report, "report.md: missing"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("target", ["report-artifact-check", "report-comment"])
def test_report_comment_refuses_an_artifact_that_is_not_plain(
    job: Job, case: str, target: str
) -> None:
    job.write_report("## r\n\n![roc](img/evaluation-roc.png)\n")
    spoil, message = REFUSED[case]
    spoil(job)

    done = job.make(target)

    assert done.returncode != 0
    assert f"{job.artifact}: not publishing this report artifact:" in done.stderr
    assert f"  {message}" in done.stderr
    assert job.calls() == [], "nothing may be published or posted from a refused artifact"


def test_report_artifact_check_accepts_a_plain_artifact(job: Job) -> None:
    job.write_report("## r\n\n![roc](img/evaluation-roc.png)\n")

    done = job.make("report-artifact-check")

    assert done.returncode == 0, done.stderr
    assert "report artifact is plain data (1 plots to publish)" in done.stdout
    assert job.calls() == []


def test_report_comment_stops_when_cml_prints_no_url(job: Job, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "cml").write_text("#!/bin/sh\necho '![](/etc/passwd)'\n")
    (fake / "cml").chmod(0o755)
    job.write_report("![roc](img/evaluation-roc.png)\n")

    done = subprocess.run(
        [
            "python3",
            str(REPO_ROOT / "scripts" / "report_comment.py"),
            "--target",
            "pr/1",
            str(job.artifact),
        ],
        env={**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 2
    assert "report comment: cml asset publish printed '![](/etc/passwd)', not an https URL" in (
        done.stderr
    )


# ---------------------------------------------------------------- the pure core


REALISTIC = """\
## flight-delay report

| parameter | main | this PR |
|:--|:--|:--|
| `evaluate.slice_columns` | `[carrier, origin]` | `[carrier]` |

**Would be promoted**: ROC AUC 0.7213 ≥ 0.70; Δ vs prod +0.0012 (95% CI [−0.0010, +0.0034])

<details>
<summary>Promotion gate (vs prod; thresholds: <code>params.yaml</code> <code>gate:</code>)</summary>

| check | result |
|:--|:--|
| ROC AUC ≥ 0.70 | ✅ 0.7213 |
| carrier `UA` | ✅ |

</details>

### Plots

![roc](img/evaluation-roc.png)
![drift scores](img/drift-drift_scores.png)

See [CML](https://cml.dev/doc) and the [run](https://github.com/o/r/actions/runs/1?x=1&y=2).

---
<sub>commit `abc1234` · data `33f6e08a40ad` · `flightdelay report`</sub>
"""


def test_compose_keeps_a_clean_report_as_it_renders() -> None:
    urls = {
        "evaluation-roc.png": "https://asset.cml.dev/1?cml=png&cache-bypass=a",
        "drift-drift_scores.png": "https://asset.cml.dev/2?cml=png&cache-bypass=b",
    }
    expected = REALISTIC.replace("img/evaluation-roc.png", urls["evaluation-roc.png"]).replace(
        "img/drift-drift_scores.png", urls["drift-drift_scores.png"]
    )
    render = MarkdownIt("commonmark").enable("table").render

    assert render(rc.compose(REALISTIC, urls)) == render(expected)


def test_compose_names_a_plot_it_has_no_url_for_as_text() -> None:
    assert rc.compose("![roc](img/evaluation-roc.png)", {}) == (
        "_(plot <code>evaluation&#45;roc&#46;png</code>: in the "
        "<code>model&#45;report</code> artifact)_"
    )


def test_compose_keeps_brackets_in_code_spans_literal_and_inert() -> None:
    posted = rc.compose("`[a](/etc/passwd)` and `` `<img src=/x>` ``", {})

    assert references(posted) == []
    assert MarkdownIt("commonmark").render(posted) == (
        "<p><code>[a](/etc/passwd)</code> and <code>`&lt;img src=/x&gt;`</code></p>\n"
    )


def test_compose_turns_every_other_bracket_into_a_character_reference() -> None:
    assert rc.compose("[a]: /etc/passwd <img>\\[", {}) == "&#91;a&#93;: /etc/passwd &lt;img>\\&#91;"


def test_referenced_images_lists_only_the_exact_form_once() -> None:
    markdown_text = (
        "![a](img/x.png) ![b](img/x.png) ![c](img/y.png?q) ![d](img/../z.png) ![e](<img/w.png>)"
    )
    assert rc.referenced_images(markdown_text) == ["x.png"]


def test_png_problem_accepts_a_png() -> None:
    assert rc.png_problem("p.png", OWN_PNG) is None


def test_published_url_refuses_anything_but_an_https_url() -> None:
    assert rc.published_url("https://asset.cml.dev/a?cml=png&cache-bypass=1\n").endswith("=1")
    for output in ("http://x/a", "/etc/passwd", "https://x/a b", "https://x/(a)", "https://x/<a>"):
        with pytest.raises(rc.CmlFailed):
            rc.published_url(output)


def test_stand_in_cml_records_publish_on_by_default(tmp_path: Path) -> None:
    """The stand-in reads flags as CML does: --publish is on unless --no-publish/--publish=false."""
    (tmp_path / "c.md").write_text("x")
    log = tmp_path / "log"
    env = {**os.environ, "CML_STAND_IN_LOG": str(log)}
    for extra in ([], ["--no-publish"], ["--publish=false"], ["--publish"]):
        subprocess.run(
            [str(STAND_INS / "cml"), "comment", "update", *extra, str(tmp_path / "c.md")],
            env=env,
            check=True,
            capture_output=True,
        )
    recorded = [json.loads(line)["publish"] for line in log.read_text().splitlines()]
    assert recorded == [True, False, False, True]


def test_stand_in_cml_refuses_a_subcommand_it_does_not_know(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(STAND_INS / "cml"), "pr", "create"],
        env={**os.environ, "CML_STAND_IN_LOG": str(tmp_path / "log")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "cml (stand-in): pr create is not supported" in done.stderr


def test_pr_comment_workflow_posts_only_through_the_make_targets() -> None:
    """The trusted job: download, check, find the PR, install CML, `make report-comment`."""
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "pr-comment.yml").read_text())
    steps = workflow["jobs"]["comment"]["steps"]
    kinds = [s.get("uses", "").split("@")[0] or s["run"].split(" ", 2)[:2] for s in steps]
    assert kinds == [
        "actions/checkout",
        "actions/download-artifact",
        ["make", "report-artifact-check"],
        ["gh", "pr"],
        "iterative/setup-cml",
        ["make", "report-comment"],
    ]
    download = steps[1]["with"]["path"]
    assert steps[2]["env"]["REPORT_DIR"] == download
    assert steps[5]["env"]["REPORT_DIR"] == download
    assert steps[5]["env"]["PR_NUMBER"] == "${{ steps.pr.outputs.number }}"
    assert "ref" not in steps[0].get("with", {}), "the trusted job checks out the default branch"


@pytest.mark.parametrize("scenario", ["params_pr", "data_pr", "main_report", "failed_validation"])
def test_every_plot_and_tag_the_report_writes_is_one_the_comment_keeps(
    params: Any, tmp_path: Path, scenario: str
) -> None:
    """flightdelay.loop.report's plot lines use the exact form compose() re-points at a URL, and
    every
    tag it writes is one compose() keeps (nothing of its own markup reaches the comment as text)."""
    import report_fixtures as rf

    inputs = getattr(rf, scenario)(params)
    report.write_report(inputs, tmp_path, rf.plot_data(inputs))
    markdown_text = (tmp_path / "report.md").read_text()
    written = sorted(p.name for p in (tmp_path / "img").glob("*.png"))

    names = rc.referenced_images(markdown_text)
    posted = rc.compose(markdown_text, {n: "https://x/" + n for n in names})
    assert sorted(names) == written
    assert "](img/" not in posted
    assert "&lt;" not in posted, [line for line in posted.splitlines() if "&lt;" in line]
