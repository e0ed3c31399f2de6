"""The one Jinja2 environment the Markdown templates (the PR report, the model card) render in."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


def markdown_environment(**filters: Callable[..., Any]) -> jinja2.Environment:
    """Templates from the package's ``templates/``, strict about undefined names, whitespace as
    written, no HTML escaping (markdown: table cells escape ``|`` with each caller's ``cell``
    filter); ``filters`` are the caller's own."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flightdelay", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(filters)
    return env
