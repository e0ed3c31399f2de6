"""gitops: the real git and gto commands on a tiny repository."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flightdelay.core import gitops
from registry_repo import RegistryRepo, build_base

NAME = "flight-delay"


@pytest.fixture(scope="module")
def base(
    tmp_path_factory: pytest.TempPathFactory, repo_root: Path
) -> tuple[RegistryRepo, dict[str, str]]:
    return build_base(tmp_path_factory.mktemp("gitops"), repo_root, ("a", "b", "c"))


@pytest.fixture
def repo(base: tuple[RegistryRepo, dict[str, str]], tmp_path: Path) -> RegistryRepo:
    return base[0].copy(tmp_path / "repo")


@pytest.fixture
def commits(base: tuple[RegistryRepo, dict[str, str]]) -> dict[str, str]:
    return base[1]


def test_register_first_version_is_v0_1_0_then_bumps(
    repo: RegistryRepo, commits: dict[str, str]
) -> None:
    assert gitops.register(NAME, commits["a"], None, "first", cwd=repo.root) == "v0.1.0"
    assert gitops.register(NAME, commits["b"], "minor", "second", cwd=repo.root) == "v0.2.0"
    assert gitops.register(NAME, commits["c"], "patch", "third", cwd=repo.root) == "v0.2.1"
    assert {"flight-delay@v0.1.0", "flight-delay@v0.2.0", "flight-delay@v0.2.1"} <= repo.tags()
    assert gitops.latest_version(NAME, cwd=repo.root) == "v0.2.1"


def test_register_bump_before_any_version_names_gto_refusal(
    repo: RegistryRepo, commits: dict[str, str]
) -> None:
    with pytest.raises(gitops.GitOpsError, match=r"gto register flight-delay .* failed: .*first"):
        gitops.register(NAME, commits["a"], "minor", "x", cwd=repo.root)


def test_assign_returns_the_stage_tag_and_show_reports_it(
    repo: RegistryRepo, commits: dict[str, str]
) -> None:
    commit = commits["a"]
    gitops.register(NAME, commit, None, "first", cwd=repo.root)
    assert gitops.assign(NAME, "v0.1.0", "staging", cwd=repo.root) == "flight-delay#staging#1"
    assert gitops.stages(NAME, cwd=repo.root) == {"staging": "v0.1.0", "prod": None}
    info = gitops.check_ref("flight-delay#staging#1", cwd=repo.root)
    assert info is not None
    assert (info["event"], info["stage"], info["commit_hexsha"]) == (
        "assignment",
        "staging",
        commit,
    )


def test_assignments_in_quick_succession_each_win_the_stage(
    repo: RegistryRepo, commits: dict[str, str]
) -> None:
    """Tag times have whole seconds and GTO orders a stage's assignments by time alone: back to
    back assignments (a promotion then a rollback, well within a second in process) must still
    leave the last one in the stage, as `gto show` sees it."""
    gitops.register(NAME, commits["a"], None, "first", cwd=repo.root)
    gitops.register(NAME, commits["b"], "minor", "second", cwd=repo.root)
    for version in ("v0.1.0", "v0.2.0", "v0.1.0", "v0.2.0"):
        gitops.assign(NAME, version, "prod", force=True, cwd=repo.root)  # as rollback does
        assert repo.show()["stage"]["prod"] == version
    times = [e["timestamp"] for e in gitops.history(NAME, repo.root) if e["event"] == "assignment"]
    assert len(set(times)) == 4


def test_assign_to_a_stage_not_in_dot_gto_is_refused(
    repo: RegistryRepo, commits: dict[str, str]
) -> None:
    gitops.register(NAME, commits["a"], None, "first", cwd=repo.root)
    with pytest.raises(gitops.GitOpsError, match=r"Allowed stages are.*staging.*prod"):
        gitops.assign(NAME, "v0.1.0", "qa", cwd=repo.root)


def test_check_ref_of_an_ordinary_tag_is_none(repo: RegistryRepo) -> None:
    repo.git("tag", "nightly")
    assert gitops.check_ref("nightly", cwd=repo.root) is None


def test_latest_version_before_any_registration_is_none(repo: RegistryRepo) -> None:
    assert gitops.latest_version(NAME, cwd=repo.root) is None
    assert gitops.history(NAME, cwd=repo.root) == []


def test_commit_of_an_unknown_ref_names_it(repo: RegistryRepo) -> None:
    with pytest.raises(gitops.GitOpsError, match=r"'no-such-tag' is not a commit, branch or tag"):
        gitops.commit_of("no-such-tag", cwd=repo.root)


def test_head_is_clean_sees_an_uncommitted_change(repo: RegistryRepo) -> None:
    assert gitops.head_is_clean(["params.yaml"], cwd=repo.root)
    (repo.root / "params.yaml").write_text("changed: true\n")
    assert not gitops.head_is_clean(["params.yaml"], cwd=repo.root)


def test_assignment_order_breaks_same_second_ties_by_tag_counter() -> None:
    events = [
        {"timestamp": "2026-01-01T00:00:00+00:00", "ref": "flight-delay#prod#10"},
        {"timestamp": "2026-01-01T00:00:00+00:00", "ref": "flight-delay#prod#9"},
        {"timestamp": "2025-12-31T23:59:59+00:00", "ref": "flight-delay#prod#11"},
    ]
    ordered = [e["ref"] for e in sorted(events, key=gitops.assignment_order)]
    assert ordered == ["flight-delay#prod#11", "flight-delay#prod#9", "flight-delay#prod#10"]


def test_github_output_and_summary_append_only_in_actions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    gitops.github_output({"a": "1"})  # outside Actions: nothing written, no error
    out, summary = tmp_path / "out", tmp_path / "summary"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    gitops.github_output({"version": "v0.1.0", "tag": "flight-delay#staging#1"})
    gitops.step_summary("### done")
    gitops.step_summary("more\n\n")
    assert out.read_text() == "version=v0.1.0\ntag=flight-delay#staging#1\n"
    assert summary.read_text() == "### done\nmore\n"


# ---------------------------------------------------------------- the only git edge

SRC = Path(__file__).resolve().parents[2] / "src" / "flightdelay"
GIT_PROGRAMS = {"git", "gto"}


def git_runs(source: str, filename: str) -> list[str]:
    """``file:line`` of every place ``source`` runs git or gto itself: an argv literal starting
    with "git"/"gto" (what subprocess runs), or an import of the gto package (``gto.api``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in GIT_PROGRAMS:
                found.append((node.lineno, f"runs `{first.value}`"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "gto":
            found.append((node.lineno, f"imports {node.module}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "gto":
                    found.append((node.lineno, f"imports {alias.name}"))
    return [f"{filename}:{line}: {what}" for line, what in sorted(found)]


def test_gitops_is_the_only_module_that_runs_git_or_gto() -> None:
    offenders = [
        hit
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "gitops.py"
        for hit in git_runs(path.read_text(), str(path.relative_to(SRC.parents[1])))
    ]
    assert not offenders, "git/gto run outside flightdelay.core.gitops:\n" + "\n".join(offenders)


def test_git_runs_names_the_file_and_line_of_each_offence() -> None:
    source = (
        "import subprocess\n"
        "from gto.api import show\n"
        "subprocess.run(['git', 'status'])\n"
        "argv = ('gto', 'show')\n"
        "subprocess.run(['dvc', 'repro'])\n"
    )
    assert git_runs(source, "x.py") == [
        "x.py:2: imports gto.api",
        "x.py:3: runs `git`",
        "x.py:4: runs `gto`",
    ]


def test_resolve_unknown_ref_is_none_and_branch_is_its_commit(repo: RegistryRepo) -> None:
    assert gitops.resolve("no-such-branch", repo.root) is None
    assert gitops.resolve("main", repo.root) == gitops.resolve("HEAD", repo.root)


def test_show_at_a_path_the_revision_lacks_is_empty_and_a_bad_revision_names_it(
    repo: RegistryRepo,
) -> None:
    assert gitops.show_at("HEAD", "no-such-file.txt", repo.root) == ""
    with pytest.raises(gitops.GitOpsError, match=r"`git show no-such-rev:x` failed"):
        gitops.show_at("no-such-rev", "x", repo.root)


def test_head_description_outside_git_is_unknown(tmp_path: Path) -> None:
    assert gitops.head_description(tmp_path) == "unknown"
