"""The docs' Sphinx extension (doc/source/_ext/stackcore_docs.py) renders what is installed where
the docs are built, which may be the core alone: a plugin kind with no installed plugin becomes a
sentence, never a list-table without rows (a docutils error, failing ``sphinx-build -W``)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys
from pathlib import Path

from docutils import nodes
from docutils.core import publish_doctree

from stackcore import families

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "doc" / "source" / "_ext"))
import stackcore_docs

EMPTY = "No plugin of this kind is installed where these docs were built."


def _problems(rst: list[str]) -> list[str]:
    """docutils' warnings and errors parsing ``rst`` (what ``-W`` turns into a failed build)."""
    tree = publish_doctree("\n".join(rst), settings_overrides={
        "report_level": 5, "halt_level": 5, "warning_stream": False})
    return [m.astext() for m in tree.findall(nodes.system_message) if m["level"] >= 2]


def test_a_header_only_list_table_is_what_fails_the_build() -> None:
    """Why the extension never emits one: docutils refuses a list-table whose only row is the
    header."""
    problems = _problems([".. list-table::", "   :header-rows: 1", "", "   * - plugin",
                          "     - status", ""])
    assert problems, "docutils accepted a list-table with a header and no rows"


def test_empty_rows_render_the_sentence() -> None:
    lines = stackcore_docs.list_table(["a", "b"], [], "50 50", empty="Nothing here.")
    assert lines == ["Nothing here.", ""], lines


def test_rows_render_a_table_that_parses() -> None:
    lines = stackcore_docs.list_table(["a", "b"], [["``x``", "one"], ["y", "two"]], "50 50",
                                      empty="Nothing here.", title="Things")
    assert lines[0] == ".. list-table:: Things", lines
    assert not _problems(lines), _problems(lines)


def test_kind_without_installed_plugins_renders_a_sentence() -> None:
    volume = families.get("volume")
    nothing = dataclasses.replace(volume, name="volume.none",
                                  namespace="stackcore.test.nothing_installed_here")
    lines = stackcore_docs.plugin_tables([nothing])
    assert EMPTY in lines and not any("list-table" in line for line in lines), lines
    assert not _problems(lines), _problems(lines)


def test_kind_with_plugins_renders_a_table_naming_them() -> None:
    """The core's fake volume driver is always installed, with the distribution it comes from
    and the first line of its docstring."""
    lines = stackcore_docs.plugin_tables([families.get("volume")])
    text = "\n".join(lines)
    assert "   * - ``fake``" in text and "stackcore-framework" in text, text
    assert EMPTY not in text, text
    assert not _problems(lines), _problems(lines)


def test_option_namespaces_core_first_then_installed_drivers() -> None:
    names = stackcore_docs.option_namespaces()
    assert names[0] == "stackcore", names
    registered = sorted(ep.name for ep in importlib.metadata.entry_points(
        group="oslo.config.opts") if ep.name.startswith("stackcore_drivers."))
    assert [n for n in names if n.startswith("stackcore_drivers.")] == registered, names
