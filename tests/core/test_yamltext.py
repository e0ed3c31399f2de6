"""yamltext: the C loader reads what PyYAML's safe loader reads, and refuses what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flightdelay.core import yamltext

REPO = Path(__file__).resolve().parents[2]
#: The repository's own YAML: params, pipeline, lock, data manifest, workflows, manifests.
FILES = sorted(
    [
        *(REPO / name for name in ("params.yaml", "dvc.yaml", "dvc.lock", "data.dvc")),
        *(REPO / ".github" / "workflows").glob("*.yml"),
        *(REPO / "deploy" / "kubernetes").glob("*.yaml"),
    ]
)


def test_the_c_parser_is_the_one_in_use() -> None:
    assert yaml.__with_libyaml__, "PyYAML was built without libyaml: every read is 12x slower"
    assert yamltext._Loader is yaml.CSafeLoader


def test_dvc_reads_yaml_through_ruamels_c_parser_too() -> None:
    """DVC parses with ruamel.yaml's safe loader, whose C parser is an extra since 0.19
    (pyproject.toml pins ruamel.yaml.clib): without it every dvc.lock read is ~4x slower."""
    from ruamel.yaml import YAML

    parser = YAML(typ="safe").Parser
    assert parser.__module__.startswith("ruamel.yaml.clib"), parser


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_load_reads_every_file_of_the_repository_as_the_python_safe_loader_does(path: Path) -> None:
    text = path.read_text()
    assert yamltext.load_all(text) == list(yaml.safe_load_all(text))


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: [1, 2\n",  # an unclosed flow sequence
        "a: !!python/object:os.system ls\n",  # a tag only the unsafe loader would construct
        "a: 'unterminated\n",
    ],
)
def test_load_refuses_what_the_python_safe_loader_refuses(text: str) -> None:
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(text)
    with pytest.raises(yamltext.Error):
        yamltext.load(text)


def test_a_parse_error_names_its_line() -> None:
    with pytest.raises(yamltext.Error, match=r"line 3"):
        yamltext.load("a: 1\nb: 2\nc: [1, 2\n")


def test_load_with_nodes_keeps_each_keys_line_and_builds_the_values_load_builds() -> None:
    text = "a: 1\nb:\n  c: 2\n"
    node, values = yamltext.load_with_nodes(text)
    assert values == yamltext.load(text) == {"a": 1, "b": {"c": 2}}
    assert yamltext.load_with_nodes("") == (None, None)
    assert isinstance(node, yamltext.MappingNode)
    (_, _), (b_key, b_value) = node.value
    assert (b_key.value, b_key.start_mark.line) == ("b", 1)
    assert isinstance(b_value, yamltext.MappingNode)
    assert b_value.value[0][0].start_mark.line == 2


def test_dump_writes_what_yaml_safe_dump_writes_in_the_given_key_order() -> None:
    data = {"outs": [{"md5": "abc.dir", "path": "data"}], "meta": {"z": 1, "a": [1, 2]}}
    assert yamltext.dump(data) == yaml.safe_dump(data, sort_keys=False)
    assert yamltext.load(yamltext.dump(data)) == data
    assert yamltext.load_all(yamltext.dump_all([data, {"b": 2}])) == [data, {"b": 2}]
