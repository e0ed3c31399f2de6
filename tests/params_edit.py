"""params.yaml edited in place by the end-to-end clones, and the fast config they train main with.

The clones commit real edits (a pull request's params change is a diff of params.yaml), so an
edit keeps every other line and comment; unknown sections or keys fail the test that asks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

# main's config in the e2e clones that run the pipeline many times (test_pr_e2e, test_loop_e2e):
# the same model family, cheaper to fit and evaluate. test_monitor and test_fresh_clone keep the
# committed params (the monitor's retrain decision and dvc.lock's reproduction depend on them).
FAST: dict[str, dict[str, object]] = {
    "train": {"max_iter": 25},
    "evaluate": {"backtest_months": 1, "importance_sample": 500, "importance_repeats": 1},
}


def edit_params(path: Path, changes: Mapping[str, Mapping[str, object]]) -> None:
    """Set ``{section: {key: value}}`` in the params file ``path``, keeping every other line and
    each edited line's comment; the values are written as given (YAML text)."""
    lines = path.read_text().splitlines(keepends=True)
    for section, values in changes.items():
        start = next((i for i, ln in enumerate(lines) if ln.startswith(f"{section}:")), None)
        assert start is not None, f"params.yaml has no section {section}"
        end = next(
            (i for i in range(start + 1, len(lines)) if re.match(r"^\S", lines[i])), len(lines)
        )
        for key, value in values.items():
            for i in range(start + 1, end):
                match = re.match(rf"^(  {key}:\s*)(.*?)(\s+#.*)?$", lines[i].rstrip("\n"))
                if match:
                    lines[i] = f"{match[1]}{value}{match[3] or ''}\n"
                    break
            else:
                raise AssertionError(f"params.yaml has no {section}.{key}")
    path.write_text("".join(lines))
