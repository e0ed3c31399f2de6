"""YAML read and written in one place; read through libyaml's C parser when PyYAML has it.

``yaml.safe_load`` is PyYAML's pure-Python parser: 6.7 ms for params.yaml against 0.6 ms for its
C twin with the same safe constructor (same Python values, same ``yaml.YAMLError`` classes and
line marks). Params, dvc.lock, data.dvc and manifests are read in every stage, gate, report and
release, so every module reads and writes YAML through these functions
(``tests/repo/test_architecture.py`` refuses another importer of ``yaml``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

# PyYAML wheels ship libyaml; a source build without it falls back to the same loader in Python.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Error = yaml.YAMLError
Node = yaml.Node
MappingNode = yaml.MappingNode
SequenceNode = yaml.SequenceNode


def load(text: str | bytes) -> Any:
    """The one document of ``text`` as plain Python values (``yaml.safe_load``)."""
    return yaml.load(text, Loader=_Loader)


def load_all(text: str | bytes) -> list[Any]:
    """Every document of a multi-document ``text`` (``yaml.safe_load_all``)."""
    return list(yaml.load_all(text, Loader=_Loader))


def load_with_nodes(text: str | bytes) -> tuple[yaml.Node | None, Any]:
    """The node tree of ``text`` with its line marks (for checks a plain load cannot see) and the
    values built from that same tree: one parse where ``compose`` then ``load`` would take two."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return node, None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


# Written through PyYAML's Python emitter: files it wrote before (data.dvc) stay byte for byte the
# same, and nothing hot writes YAML.
def dump(data: Any, *, sort_keys: bool = False) -> str:
    """``data`` as block-style YAML (``yaml.safe_dump``); keys in their order unless sorted."""
    return yaml.safe_dump(data, sort_keys=sort_keys)


def dump_all(documents: Iterable[Any], *, sort_keys: bool = False) -> str:
    """Several documents separated by ``---`` (``yaml.safe_dump_all``)."""
    return yaml.safe_dump_all(documents, sort_keys=sort_keys)
