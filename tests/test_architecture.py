"""ARCHITECTURE.md as a test: every module belongs to one part, imports only what its part may,
and serving never pulls in the pipeline's heavy libraries (on the flat layout, by module name)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "flightdelay"

PARTS: dict[str, frozenset[str]] = {
    "core": frozenset(
        {
            "__init__",
            "params",
            "io",
            "gitops",
            "revisions",
            "stats",
            "stage",
            "model_io",
            "artifacts",
            "data",
            "tracking",
            "signing",
            "schemas",
            "features",
        }
    ),
    "pipeline": frozenset({"validate", "featurize", "audit", "train", "evaluate", "drift", "card"}),
    "loop": frozenset(
        {
            "compare",
            "gate",
            "report",
            "report_render",
            "report_plots",
            "report_view",
            "report_markdown",
            "rescore",
            "promote",
            "release",
            "deploy",
            "rollback",
            "monitor",
            "monitor_markdown",
            "mlflow_alias",
            "repro",
            "canary",
            "shadow",
            "nginx",
            "traffic",
        }
    ),
    "serving": frozenset({"serve", "fast_predict", "scoring", "http_guard", "smoke"}),
    "entry": frozenset({"cli", "__main__"}),  # names the others; imports the one asked for
}
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "pipeline": frozenset({"core", "pipeline"}),
    "loop": frozenset({"core", "pipeline", "loop"}),
    "serving": frozenset({"core", "serving"}),
    "entry": frozenset({"core", "pipeline", "loop", "serving", "entry"}),
}
#: Imports across the rules that exist today, each with why; a new one fails the test.
DEBT: dict[tuple[str, str], str] = {
    ("traffic", "serve"): "issue 20's request sample reuses serve.check_rows: move it to schemas",
}
#: Outside systems and the only modules that may import their libraries.
EDGES: dict[str, frozenset[str]] = {
    "gto": frozenset({"gitops"}),
    "mlflow": frozenset({"tracking", "mlflow_alias"}),
    "great_expectations": frozenset({"validate"}),
    "dvc": frozenset({"artifacts", "revisions", "repro", "release", "card"}),
}
#: What the serving image never loads, even through a core module it imports.
NOT_IN_SERVING = ("dvc", "mlflow", "gto", "great_expectations", "evidently", "matplotlib")


def part_of(module: str) -> str:
    found = [part for part, members in PARTS.items() if module in members]
    assert len(found) == 1, (
        f"src/flightdelay/{module}.py is in {found or 'no part'}: add it to one part in "
        "tests/test_architecture.py PARTS and ARCHITECTURE.md"
    )
    return found[0]


@cache
def imports(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(flightdelay modules, top-level outside packages) that ``module`` imports anywhere in it
    (lazy imports inside functions included)."""
    tree = ast.parse((SRC / f"{module}.py").read_text())
    ours: set[str] = set()
    theirs: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "flightdelay":
                ours |= {a.name for a in node.names if (SRC / f"{a.name}.py").is_file()}
            elif node.module.startswith("flightdelay."):
                ours.add(node.module.split(".")[1])
            else:
                theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("flightdelay."):
                    ours.add(alias.name.split(".")[1])
                else:
                    theirs.add(alias.name.split(".")[0])
    ours.discard(module)
    return frozenset(ours), frozenset(theirs)


def modules() -> list[str]:
    return sorted(p.stem for p in SRC.glob("*.py"))


def test_architecture_every_module_is_in_exactly_one_part() -> None:
    for module in modules():
        part_of(module)
    listed = set().union(*PARTS.values())
    assert listed <= set(modules()), f"no such module: {sorted(listed - set(modules()))}"


def cross_part_imports(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Every import in ``graph`` (module -> flightdelay modules it imports) that its part may not
    make, as ``module (part) imports other (part)``."""
    return [
        f"{module} ({part_of(module)}) imports {other} ({part_of(other)})"
        for module, imported in sorted(graph.items())
        for other in sorted(imported)
        if part_of(other) not in MAY_IMPORT[part_of(module)] and (module, other) not in DEBT
    ]


def test_architecture_no_module_imports_across_the_rules() -> None:
    offences = cross_part_imports({module: imports(module)[0] for module in modules()})
    assert not offences, "imports across ARCHITECTURE.md's rules:\n" + "\n".join(offences)


def test_architecture_cross_part_imports_names_each_offence() -> None:
    graph = {"stats": {"promote"}, "serve": {"train", "model_io"}, "gate": {"train"}}
    assert cross_part_imports(graph) == [
        "serve (serving) imports train (pipeline)",
        "stats (core) imports promote (loop)",
    ]


def test_architecture_outside_systems_have_their_edges_only() -> None:
    offences = [
        f"{module} imports {library} (only {sorted(EDGES[library])} may)"
        for module in modules()
        for library in sorted(imports(module)[1] & EDGES.keys())
        if module not in EDGES[library]
    ]
    assert not offences, "\n".join(offences)


def test_architecture_serving_never_loads_the_pipelines_libraries() -> None:
    for start in PARTS["serving"]:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            ours, theirs = imports(module)
            heavy = sorted(theirs & set(NOT_IN_SERVING))
            assert not heavy, f"serving's {start} loads {heavy} through {module}"
            todo.extend(ours)


def test_architecture_every_module_states_its_job_in_its_docstring() -> None:
    missing = [
        m for m in modules() if not ast.get_docstring(ast.parse((SRC / f"{m}.py").read_text()))
    ]
    assert not missing, f"modules without a docstring saying their one job: {missing}"
