"""Sphinx directives that generate docs from the code, so the docs cannot drift from it.

* ``.. stackcore-contract:: FAMILY`` - required methods and optional capabilities of a family,
  each with the first line of its behavioural docstring.
* ``.. stackcore-stats-table:: module:ATTRIBUTE`` - a stats table from a ``FIELDS`` tuple of
  (field, type, meaning).
* ``.. stackcore-support-matrix::`` - declared capabilities joined with conformance results
  (of the run that wrote ``$STACKCORE_CONFORMANCE_RESULTS``), wide tables kept on the page.
* ``.. stackcore-connection-info::`` - storage protocols and their ``connection_info`` keys.
* ``.. stackcore-families::`` - the registered families, from their descriptors.
* ``.. stackcore-plugins::`` - the plugins installed where the docs are built, per plugin kind.
* ``.. stackcore-options::`` - the configuration reference of every installed distribution.

Everything here is generated from what is installed where the docs are built, which may be the
core alone: a table with nothing to list becomes a sentence saying so (:func:`list_table`),
never a table without rows (which docutils refuses, failing a ``-W`` build).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def _first_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


def list_table(header: list[str], rows: list[list[str]], widths: str, empty: str,
               title: str = "") -> list[str]:
    """reST lines of a ``list-table`` with a header row, or the sentence ``empty`` when there
    are no ``rows``: a table with a header and no body is a docutils error."""
    if not rows:
        return [empty, ""]
    lines = [f".. list-table:: {title}".rstrip(), "   :header-rows: 1", f"   :widths: {widths}",
             ""]
    for row in [header, *rows]:
        lines += [f"   * - {row[0]}", *(f"     - {cell}" for cell in row[1:])]
    return [*lines, ""]


def _cell(text: str) -> str:
    """One line of reST text in a table cell (markup characters of free text escaped)."""
    return " ".join(text.replace("*", r"\*").replace("`", "'").replace("|", r"\|").split())


def plugin_tables(kinds: list[Any]) -> list[str]:
    """reST for :class:`PluginsDirective`: per plugin kind (``stackcore.families.PluginKind``),
    a rubric and a table of its installed plugins, or a sentence when none is installed."""
    from stackcore.plugins import loader

    lines: list[str] = []
    for kind in kinds:
        rows = []
        for item in loader.discover(kind.namespace, kind.contract()):
            if item.plugin is not None:
                # docstrings are reST already: kept as written
                what = _first_line(item.plugin.cls) or "-"
            else:
                what = _cell(f"{item.status}: {item.error}" +
                             (f"; install: {item.hint}" if item.hint else ""))
            rows.append([f"``{item.name}``", _cell(f"{item.distribution} {item.version}"),
                         item.status, what])
        lines += [f".. rubric:: {kind.name} (``{kind.namespace}``)", ""]
        lines += list_table(["plugin", "distribution", "status", "what it is"], rows,
                            "20 20 10 50", empty="No plugin of this kind is installed where "
                            "these docs were built.")
    return lines


class _RstDirective(SphinxDirective):
    def emit(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.section()
        container.document = self.state.document
        self.state.nested_parse(StringList(lines, source="<generated>"), self.content_offset,
                                container)
        return list(container.children)


class ContractDirective(_RstDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        from stackcore import families

        family = families.get(self.arguments[0])
        contract = family.contract()
        lines = [f"Entry-point namespace: ``{family.namespace}``.", ""]
        lines += list_table(
            ["method", "contract"],
            [[f"``{name}``", _first_line(getattr(contract.base, name))]
             for name in contract.required],
            "25 75", title="Required methods (minimum features)",
            empty="This family requires no method.")
        lines += list_table(
            ["capability", "methods", "contract"],
            [[f"``{cap}``", ", ".join(f"``{m}``" for m in methods) or "none",
              _first_line(getattr(contract.base, methods[0])) if methods else
              "A behaviour of the required methods (no method of its own); the conformance "
              "kit tests it."]
             for cap, methods in sorted(contract.capabilities.items())],
            "25 25 50", title="Optional capabilities (declared in ``capabilities``)",
            empty="This family has no optional capabilities.")
        return self.emit(lines)


class StatsTableDirective(_RstDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module, _, attr = self.arguments[0].partition(":")
        fields = getattr(importlib.import_module(module), attr)
        return self.emit(list_table(
            ["statistic", "type", "meaning"],
            [[f"``{name}``", kind, meaning] for name, kind, meaning in fields],
            "25 20 55", empty="No statistic is defined."))


class SupportMatrixDirective(_RstDirective):
    """``.. stackcore-support-matrix::`` with an optional ``:family:`` to show one family.

    Built from the conformance results in ``$STACKCORE_CONFORMANCE_RESULTS`` (default
    ``.stackcore-conformance``, what ``stackcore conformance`` writes) and says which run made
    them; wide tables are turned (drivers as columns) and scroll inside the page."""

    option_spec = {"family": str}

    def run(self) -> list[nodes.Node]:
        import dataclasses

        from stackcore import matrix

        results = os.environ.get("STACKCORE_CONFORMANCE_RESULTS", ".stackcore-conformance")
        built = matrix.build(results)
        if "family" in self.options:
            built = dataclasses.replace(built, tables={
                f: v for f, v in built.tables.items() if f == self.options["family"]})
        text = matrix.render_rst(built)
        return self.emit([*text.splitlines(), ""])


class ConnectionInfoDirective(_RstDirective):
    """``.. stackcore-connection-info::`` - per storage protocol, the ``driver_volume_type``
    and the ``connection_info`` data keys (required by the schema, and read by the kit to open
    the volume with qemu)."""

    def run(self) -> list[nodes.Node]:
        from stackcore.testing.datapath import OPENED_WITH
        from stackcore.volume.connection_info import DATA_SCHEMAS, PROTOCOL_TO_VOLUME_TYPE

        opened = {"local": "qemu: a local file or device", "nfs": "qemu ``nfs://`` (libnfs)",
                  "rbd": "qemu ``rbd:`` (librbd)", "iscsi": "qemu ``iscsi://`` (libiscsi)"}
        rows = []
        for protocol, kind in PROTOCOL_TO_VOLUME_TYPE.items():
            keys = ", ".join(f"``{k}``" for k in DATA_SCHEMAS[kind]["required"])
            read = ", ".join(f"``{k}``" for k in OPENED_WITH[kind])
            rows.append([f"``{protocol}``", f"``{kind}``", keys, f"{opened[kind]} (reads {read})"])
        return self.emit(list_table(
            ["``STORAGE_PROTOCOL``", "``driver_volume_type``", "required ``data`` keys",
             "the kit opens it with"], rows, "15 15 45 25",
            empty="No storage protocol is defined."))


class FamiliesDirective(_RstDirective):
    """``.. stackcore-families::`` - every registered family from its descriptor: plugin kinds
    (namespace, contract), services, tables' modules and option groups."""

    def run(self) -> list[nodes.Node]:
        from stackcore import families

        rows = []
        for fam in families.all_families():
            kinds = "; ".join(f"``{k.name}`` (``{k.namespace}``)" for k in fam.kinds) or "-"
            groups = sorted({g for g, _ in fam.option_groups()})
            tables = ", ".join(f"``{m}``" for m in fam.models)
            rows.append([f"``{fam.name}``", kinds,
                         ", ".join(f"``{s}``" for s in fam.services) or "-",
                         f"{tables}; " + (", ".join(f"``[{g}]``" for g in groups) or
                                          "no options")])
        return self.emit(list_table(
            ["family", "plugin kinds (entry-point namespace)", "services", "tables, options"],
            rows, "12 44 14 30", empty="No family is registered."))


def _add_static(app):  # type: ignore[no-untyped-def]
    app.config.html_static_path.append(os.path.join(os.path.dirname(__file__), "static"))


def _schema_words(schema: dict) -> str:
    """A compact reading of an argument's JSON schema."""
    import json

    text = json.dumps(schema, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= 300 else text[:297] + "..."


class ApiSchemasDirective(_RstDirective):
    """``.. stackcore-api-schemas:: MODULE:CLASS`` - every public method of a family API with
    the schema of each argument (the very objects the methods validate with)."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        from stackcore import schemas

        module, _, attr = self.arguments[0].partition(":")
        cls = getattr(importlib.import_module(module), attr)
        lines: list[str] = []
        for name in sorted(n for n in dir(cls) if not n.startswith("_")):
            method = getattr(cls, name)
            schema = schemas.schema_of(method) if inspect.isfunction(method) else None
            if schema is None:
                continue
            lines += [f".. rubric:: {name}", "", _first_line(method) or "", ""]
            lines += list_table(
                ["argument", "required", "schema"],
                [[f"``{arg}``", "yes" if arg in schema.get("required", []) else "no",
                  f"``{_schema_words(sub)}``"] for arg, sub in schema["properties"].items()],
                "20 10 70", empty="No arguments.")
        return self.emit(lines)


class PolicyRulesDirective(_RstDirective):
    """``.. stackcore-policy-rules::`` - every policy rule default (what
    ``oslopolicy-sample-generator --namespace stackcore`` writes)."""

    def run(self) -> list[nodes.Node]:
        from stackcore.project import policy

        rows = []
        for rule in policy.list_rules():
            ops = ", ".join(f"``{op['path']}``" for op in getattr(rule, "operations", []) or [])
            what = rule.description + (f" ({ops})" if ops else "")
            rows.append([f"``{rule.name}``", f"``{rule.check_str}``", what])
        return self.emit(list_table(["rule", "default", "what it allows"], rows, "30 25 45",
                                    empty="No policy rule is defined."))


class QuotaResourcesDirective(_RstDirective):
    """``.. stackcore-quota-resources::`` - every countable resource of every family."""

    def run(self) -> list[nodes.Node]:
        from stackcore.project import opts

        return self.emit(list_table(
            ["``[quota]`` option", "default", "counts"],
            [[f"``{r.name}``", f"``{r.default}``", r.help] for r in opts.resources().values()],
            "25 15 60", empty="No family counts a resource."))


class PluginsDirective(_RstDirective):
    """``.. stackcore-plugins::`` - per plugin kind of every family, the plugins installed where
    the docs are built (loaded and verified like ``stackcore drivers`` does: a plugin whose
    backend library is missing is listed as unavailable, not a build failure)."""

    def run(self) -> list[nodes.Node]:
        from stackcore import families

        return self.emit(plugin_tables(list(families.kinds())))


#: The prefix of the ``oslo.config.opts`` namespaces :class:`OptionsDirective` documents.
OPTIONS_PREFIX = "stackcore"


def option_namespaces() -> list[str]:
    """The installed ``oslo.config.opts`` namespaces of stackcore's distributions: the core's
    ``stackcore`` first, then the drivers' (``stackcore_drivers.*``) and any other installed
    ``stackcore*`` one, sorted."""
    names = {ep.name for ep in importlib.metadata.entry_points(group="oslo.config.opts")
             if ep.name.startswith(OPTIONS_PREFIX)}
    return sorted(names, key=lambda name: (name != "stackcore", name))


class OptionsDirective(_RstDirective):
    """``.. stackcore-options::`` - oslo.config's ``show-options`` over every installed
    namespace of :func:`option_namespaces`: one reference, each group once, whether the docs
    are built with the core alone or with the drivers."""

    def run(self) -> list[nodes.Node]:
        names = option_namespaces()
        lines = ["Namespaces documented here (installed where these docs were built): " +
                 ", ".join(f"``{n}``" for n in names) + ".", "", ".. show-options::", ""]
        return self.emit([*lines, *(f"   {n}" for n in names), ""])


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("builder-inited", _add_static)
    app.add_css_file("stackcore-docs.css")
    app.add_directive("stackcore-connection-info", ConnectionInfoDirective)
    app.add_directive("stackcore-contract", ContractDirective)
    app.add_directive("stackcore-stats-table", StatsTableDirective)
    app.add_directive("stackcore-support-matrix", SupportMatrixDirective)
    app.add_directive("stackcore-families", FamiliesDirective)
    app.add_directive("stackcore-api-schemas", ApiSchemasDirective)
    app.add_directive("stackcore-policy-rules", PolicyRulesDirective)
    app.add_directive("stackcore-quota-resources", QuotaResourcesDirective)
    app.add_directive("stackcore-plugins", PluginsDirective)
    app.add_directive("stackcore-options", OptionsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
