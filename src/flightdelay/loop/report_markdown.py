"""The report's words: the Jinja2 templates (``templates/report.md.j2``) filled from a
:class:`flightdelay.loop.report_view.ReportView`, the markdown CML posts, and :func:`to_html`, the
local
preview rendered as GitHub renders a comment. Nothing here reads a file but the templates."""

from __future__ import annotations

import math
import re
from functools import cache
from typing import TYPE_CHECKING, Any

from flightdelay import MODEL_NAME
from flightdelay.core.stats import LABELS
from flightdelay.core.templates import markdown_environment
from flightdelay.loop.report_view import TITLE, DeltaView, ReportView

if TYPE_CHECKING:
    import jinja2


# ---------------------------------------------------------------- rendering

MINUS = "\u2212"
_NEGATIVE = re.compile(r"(?<![\w.\-])-(?=\.?\d)")
_CODE = re.compile(r"(```.*?```|`[^`\n]*`|<[^>\n]*>|\]\([^)\s]*\))", re.DOTALL)


def typographic_minus(markdown: str) -> str:
    """Every negative number in prose gets U+2212 (the minus sign); code spans, fenced blocks,
    HTML tags and link targets keep their ASCII (a value in backticks is copied as typed)."""
    parts = _CODE.split(markdown)
    return "".join(p if i % 2 else _NEGATIVE.sub(MINUS, p) for i, p in enumerate(parts))


def _signed(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}".replace("-", MINUS)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    return f"{float(value):.{digits}f}".replace("-", MINUS)


def _pct(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * float(value):.{digits}f} %"


def _ci(d: DeltaView, digits: int = 4) -> str:
    return f"{_signed(d.low, digits)} … {_signed(d.high, digits)}"


def _short(value: str | None, n: int = 8) -> str:
    return value[:n] if value else "?"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _thousands(value: Any) -> str:
    return "–" if value is None else f"{int(value):,}"


def _rule_value(value: Any) -> str:
    """A rule value in the diff under the verdict; a list without brackets (the trusted comment
    turns brackets into character references, which a code block would show as typed)."""
    if value is None:
        return "(absent)"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


@cache
def environment() -> jinja2.Environment:
    env = markdown_environment(
        signed=_signed,
        num=_num,
        pct=_pct,
        ci=_ci,
        short=_short,
        cell=_cell,
        thousands=_thousands,
        metric_label=lambda key: LABELS.get(key, key),
        yaml_value=_rule_value,
    )
    env.globals.update(MODEL_NAME=MODEL_NAME)
    return env


def render(view: ReportView) -> str:
    """report.md from the view (templates/report.md.j2)."""
    text = environment().get_template("report.md.j2").render(v=view)
    # A <details> block needs blank lines around it, whatever the includes left.
    text = re.sub(r"</details>\n(?=\S)", "</details>\n\n", text)
    text = re.sub(r"(?<=\S)\n<details", "\n\n<details", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return typographic_minus(text)


IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)")


def referenced_images(markdown: str) -> list[str]:
    """The local image targets a report's markdown references."""
    return [m["src"] for m in IMAGE.finditer(markdown) if "://" not in m["src"]]


def for_job_summary(markdown: str) -> str:
    """The report for ``$GITHUB_STEP_SUMMARY``: local images become text (it cannot show them)."""
    from pathlib import Path

    return IMAGE.sub(
        lambda m: f"_(plot `{Path(m['src']).name}`: in the `model-report` artifact)_", markdown
    )


# GitHub's comment styles (primer), close enough for a local preview at the comment's width.
CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI","Noto Sans",Helvetica,Arial,
sans-serif;font-size:14px;line-height:1.5;color:#1f2328;max-width:780px;margin:24px auto;
padding:16px 24px;border:1px solid #d1d9e0;border-radius:6px}
h2{border-bottom:1px solid #d1d9e0;padding-bottom:.3em;margin-top:0}h3{margin-top:24px}
table{border-collapse:collapse;margin:8px 0;display:block;width:max-content;max-width:100%;
overflow:auto}
th,td{border:1px solid #d1d9e0;padding:6px 13px}tr:nth-child(2n){background:#f6f8fa}
th{font-weight:600}code{background:#eff1f3;padding:.2em .4em;border-radius:6px;font-size:85%}
img{max-width:100%;margin:4px 0}details{margin:8px 0}summary{cursor:pointer}
hr{border:0;border-top:1px solid #d1d9e0}sub{color:#59636e}
pre{background:#f6f8fa;padding:12px 16px;border-radius:6px;overflow:auto;line-height:1.45}
pre code{background:none;padding:0;font-size:85%}
"""


def _slug(value: str, separator: str = "-") -> str:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", value.strip().lower()).replace(" ", separator)


def to_html(markdown_text: str) -> str:
    """A standalone HTML page of the report, rendered the way GitHub renders the comment."""
    import html

    import markdown

    # GitHub renders markdown inside <details> when blank lines surround it; Python-Markdown
    # needs md_in_html and markdown="1" for the same. toc gives headings GitHub's anchors.
    text = re.sub(r"<details( open)?>", r'<details\1 markdown="1">', markdown_text)
    body = markdown.markdown(
        text,
        extensions=["tables", "fenced_code", "md_in_html", "toc"],
        extension_configs={"toc": {"slugify": _slug}},
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(TITLE)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
