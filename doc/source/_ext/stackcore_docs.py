"""Sphinx directives that generate docs from the code, so the docs cannot drift from it.

* ``.. stackcore-contract:: FAMILY`` - required methods and optional capabilities of a family,
  each with the first line of its behavioural docstring.
* ``.. stackcore-stats-table:: module:ATTRIBUTE`` - a stats table from a ``FIELDS`` tuple of
  (field, type, meaning).
* ``.. stackcore-support-matrix::`` - declared capabilities joined with conformance results
  (of the run that wrote ``$STACKCORE_CONFORMANCE_RESULTS``), wide tables kept on the page.
* ``.. stackcore-connection-info::`` - storage protocols and their ``connection_info`` keys.
* ``.. stackcore-families::`` - the registered families, from their descriptors.
"""

from __future__ import annotations

import importlib
import inspect
import os

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def _first_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


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
        lines = [f"Entry-point namespace: ``{family.namespace}``.", "",
                 ".. list-table:: Required methods (minimum features)", "   :header-rows: 1",
                 "   :widths: 25 75", "", "   * - method", "     - contract"]
        for name in contract.required:
            lines += [f"   * - ``{name}``", f"     - {_first_line(getattr(contract.base, name))}"]
        if not contract.capabilities:
            return self.emit([*lines, "", "This family has no optional capabilities.", ""])
        lines += ["", ".. list-table:: Optional capabilities (declared in ``capabilities``)",
                  "   :header-rows: 1", "   :widths: 25 25 50", "",
                  "   * - capability", "     - methods", "     - contract"]
        for cap, methods in sorted(contract.capabilities.items()):
            lines += [f"   * - ``{cap}``", "     - " + ", ".join(f"``{m}``" for m in methods),
                      f"     - {_first_line(getattr(contract.base, methods[0]))}"]
        return self.emit([*lines, ""])


class StatsTableDirective(_RstDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module, _, attr = self.arguments[0].partition(":")
        fields = getattr(importlib.import_module(module), attr)
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 25 20 55", "",
                 "   * - statistic", "     - type", "     - meaning"]
        for name, kind, meaning in fields:
            lines += [f"   * - ``{name}``", f"     - {kind}", f"     - {meaning}"]
        return self.emit([*lines, ""])


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

        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 15 15 45 25", "",
                 "   * - ``STORAGE_PROTOCOL``", "     - ``driver_volume_type``",
                 "     - required ``data`` keys", "     - the kit opens it with"]
        opened = {"local": "qemu: a local file or device", "nfs": "qemu ``nfs://`` (libnfs)",
                  "rbd": "qemu ``rbd:`` (librbd)", "iscsi": "qemu ``iscsi://`` (libiscsi)"}
        for protocol, kind in PROTOCOL_TO_VOLUME_TYPE.items():
            keys = ", ".join(f"``{k}``" for k in DATA_SCHEMAS[kind]["required"])
            read = ", ".join(f"``{k}``" for k in OPENED_WITH[kind])
            lines += [f"   * - ``{protocol}``", f"     - ``{kind}``", f"     - {keys}",
                      f"     - {opened[kind]} (reads {read})"]
        return self.emit([*lines, ""])


class FamiliesDirective(_RstDirective):
    """``.. stackcore-families::`` - every registered family from its descriptor: plugin kinds
    (namespace, contract), services, tables' modules and option groups."""

    def run(self) -> list[nodes.Node]:
        from stackcore import families

        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 12 44 14 30", "",
                 "   * - family", "     - plugin kinds (entry-point namespace)",
                 "     - services", "     - tables, options"]
        for fam in families.all_families():
            kinds = "; ".join(f"``{k.name}`` (``{k.namespace}``)" for k in fam.kinds) or "-"
            groups = sorted({g for g, _ in fam.option_groups()})
            tables = ", ".join(f"``{m}``" for m in fam.models)
            lines += [f"   * - ``{fam.name}``", f"     - {kinds}",
                      "     - " + (", ".join(f"``{s}``" for s in fam.services) or "-"),
                      f"     - {tables}; " + (", ".join(f"``[{g}]``" for g in groups) or
                                              "no options")]
        return self.emit([*lines, ""])


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
            if not schema["properties"]:
                lines += ["No arguments.", ""]
                continue
            lines += [".. list-table::", "   :header-rows: 1", "   :widths: 20 10 70", "",
                      "   * - argument", "     - required", "     - schema"]
            for arg, sub in schema["properties"].items():
                required = "yes" if arg in schema.get("required", []) else "no"
                lines += [f"   * - ``{arg}``", f"     - {required}",
                          f"     - ``{_schema_words(sub)}``"]
            lines.append("")
        return self.emit(lines)


class PolicyRulesDirective(_RstDirective):
    """``.. stackcore-policy-rules::`` - every policy rule default (what
    ``oslopolicy-sample-generator --namespace stackcore`` writes)."""

    def run(self) -> list[nodes.Node]:
        from stackcore.project import policy

        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 30 25 45", "",
                 "   * - rule", "     - default", "     - what it allows"]
        for rule in policy.list_rules():
            ops = ", ".join(f"``{op['path']}``" for op in getattr(rule, "operations", []) or [])
            what = rule.description + (f" ({ops})" if ops else "")
            lines += [f"   * - ``{rule.name}``", f"     - ``{rule.check_str}``",
                      f"     - {what}"]
        return self.emit([*lines, ""])


class QuotaResourcesDirective(_RstDirective):
    """``.. stackcore-quota-resources::`` - every countable resource of every family."""

    def run(self) -> list[nodes.Node]:
        from stackcore.project import opts

        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 25 15 60", "",
                 "   * - ``[quota]`` option", "     - default", "     - counts"]
        for resource in opts.resources().values():
            lines += [f"   * - ``{resource.name}``", f"     - ``{resource.default}``",
                      f"     - {resource.help}"]
        return self.emit([*lines, ""])


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
    return {"parallel_read_safe": True, "parallel_write_safe": True}
