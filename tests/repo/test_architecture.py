"""ARCHITECTURE.md as a test: every module belongs to one part, imports only what its part may,
and serving never pulls in the pipeline's heavy libraries. The parts are the subpackages."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "flightdelay"

#: The parts are the package's subpackages; the rest (cli, __main__, the package's own
#: __init__ with MODEL_NAME) is the entry, and the package __init__ counts as core.
PARTS = ("core", "pipeline", "loop", "serving")
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "pipeline": frozenset({"core", "pipeline"}),
    "loop": frozenset({"core", "pipeline", "loop"}),
    "serving": frozenset({"core", "serving"}),
    "entry": frozenset({"core", "pipeline", "loop", "serving", "entry"}),
}
#: Imports across the rules that exist today, each with why; a new one fails the test.
DEBT: dict[tuple[str, str], str] = {}
#: Outside systems and the only modules that may import their libraries.
EDGES: dict[str, frozenset[str]] = {
    "gto": frozenset({"core.gitops"}),
    "mlflow": frozenset({"core.tracking", "loop.mlflow_alias"}),
    "great_expectations": frozenset({"pipeline.validate_gx"}),
    "dvc": frozenset({"core.artifacts", "core.revisions", "loop.repro"}),
    # Not an outside system, but one reader: yamltext picks libyaml's C parser (12x PyYAML's
    # Python one on params.yaml), so a stray yaml.safe_load is a slow path back.
    "yaml": frozenset({"core.yamltext"}),
}
#: What the serving image never loads, even through a core module it imports.
NOT_IN_SERVING = ("dvc", "mlflow", "gto", "great_expectations", "evidently", "matplotlib")


def part_of(module: str) -> str:
    """``core.params`` -> core; ``cli``, ``__main__`` -> entry; the package itself -> core."""
    head, _, rest = module.partition(".")
    if head in PARTS:
        return head
    assert not rest, f"{module}: modules live in one of {PARTS} (or are the entry: cli, __main__)"
    return "core" if module == "__init__" else "entry"


def path_of(module: str) -> Path:
    """``core.params`` -> src/flightdelay/core/params.py; a package -> its __init__.py."""
    base = SRC.joinpath(*module.split("."))
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"


def resolve(dotted: str) -> str | None:
    """``flightdelay.core.params`` (or ``flightdelay.core.params.X``) -> ``core.params``."""
    parts = dotted.split(".")[1:]
    while parts:
        name = ".".join(parts)
        if (
            SRC.joinpath(*parts).with_suffix(".py").is_file()
            or (SRC.joinpath(*parts) / "__init__.py").is_file()
        ):
            return name if name.split(".")[-1] != "__init__" else None
        parts.pop()
    return "__init__"


@cache
def imports(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(flightdelay modules, top-level outside packages) that ``module`` imports anywhere in it
    (lazy imports inside functions included)."""
    tree = ast.parse(path_of(module).read_text())
    ours: set[str] = set()
    theirs: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "flightdelay" or node.module.startswith("flightdelay."):
                for alias in node.names:
                    found = resolve(f"{node.module}.{alias.name}")
                    if found:
                        ours.add(found)
            else:
                theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "flightdelay" or alias.name.startswith("flightdelay."):
                    found = resolve(alias.name)
                    if found:
                        ours.add(found)
                else:
                    theirs.add(alias.name.split(".")[0])
    ours.discard(module)
    ours -= {part for part in PARTS}  # a subpackage's __init__ holds only its docstring
    return frozenset(ours), frozenset(theirs)


def modules() -> list[str]:
    """Every module as its dotted name under flightdelay: ``cli``, ``core.params``, ..."""
    return sorted(
        ".".join(p.relative_to(SRC).with_suffix("").parts)
        for p in SRC.rglob("*.py")
        if not (p.name == "__init__.py" and p.parent != SRC)
    )


def test_architecture_every_module_is_in_one_part_and_the_parts_are_documented() -> None:
    for module in modules():
        part_of(module)
    architecture = (SRC.parents[1] / "ARCHITECTURE.md").read_text()
    for part in PARTS:
        init = SRC / part / "__init__.py"
        assert init.is_file(), f"{init} missing"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init}: docstring missing"
        assert f"flightdelay/{part}/" in architecture, f"ARCHITECTURE.md does not describe {part}/"
    named = [m for m in modules() if "." in m]  # the parts' modules; the entry is named by file
    undocumented = [m for m in named if f"`{m.split('.')[-1]}`" not in architecture]
    assert not undocumented, f"modules ARCHITECTURE.md does not name: {undocumented}"


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
    graph = {
        "core.stats": {"loop.promote"},
        "serving.serve": {"pipeline.train", "core.model_io"},
        "loop.gate": {"pipeline.train"},
    }
    assert cross_part_imports(graph) == [
        "core.stats (core) imports loop.promote (loop)",
        "serving.serve (serving) imports pipeline.train (pipeline)",
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
    for start in [m for m in modules() if part_of(m) == "serving"]:
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
    missing = [m for m in modules() if not ast.get_docstring(ast.parse(path_of(m).read_text()))]
    assert not missing, f"modules without a docstring saying their one job: {missing}"


#: The one size rule (issue 15): a module over this many lines holds more than one job.
MAX_LINES = 600


def test_architecture_no_module_is_over_the_size_rule() -> None:
    sizes = {m: len(path_of(m).read_text().splitlines()) for m in modules()}
    over = sorted((m, n) for m, n in sizes.items() if n > MAX_LINES)
    assert not over, f"over {MAX_LINES} lines (split them by job): {over}"


#: Commands of the release path that never fit or load a model (a model directory is checked by
#: its hashes and signature): importing them must not load scikit-learn or SciPy (~1.5 s per
#: process, paid by every `make release`, `make deploy`, `make mlflow-alias` before this rule).
NO_MODEL_LIBRARIES = (
    "core.model_io",
    "core.tracking",
    "loop.deploy",
    "loop.mlflow_alias",
    "loop.release",
    "loop.rollback",
)


def test_architecture_the_release_path_imports_no_model_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        + "".join(f"import flightdelay.{m}\n" for m in NO_MODEL_LIBRARIES)
        + "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]", f"{NO_MODEL_LIBRARIES} load {done.stdout.strip()}"
