"""An import-linter contract type: a package may import only the public modules of another.

``stackcore_drivers`` (and any third-party driver package that wants the same guarantee) is
built on stackcore's public API only: each family package's re-exports, the exception types,
the kit. A ``forbidden`` contract would need a list of everything that is *not* public, which
goes stale as soon as a module is added; this contract lists what *is* public, so a new
internal module is refused by default. Use it from an import-linter configuration::

    [importlinter]
    root_packages = stackcore mydriver
    contract_types =
        public_api: stackcore.testing.importlinter.PublicApiContract

    [importlinter:contract:public-api]
    name = mydriver uses only stackcore's public API
    type = public_api
    importers = mydriver
    provider = stackcore
    public_modules =
        stackcore
        stackcore.exception
        stackcore.compute

Only direct imports are checked (a public module may of course import internal ones), and a
public package does not make its submodules public: each one is listed.
"""

from __future__ import annotations

from typing import Any

from importlinter import Contract, ContractCheck, fields, output


class PublicApiContract(Contract):
    """``importers`` may import, of ``provider``, only ``public_modules``."""

    type_name = "public_api"

    importers = fields.ListField(subfield=fields.StringField())
    provider = fields.StringField()
    public_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        public = set(self.public_modules)  # type: ignore[call-overload]
        provider = str(self.provider)
        violations: list[tuple[str, str, str]] = []
        for importer_root in self.importers:  # type: ignore[attr-defined]
            for found in graph.find_matching_direct_imports(
                    import_expression=f"{importer_root}.** -> {provider}.**"):
                self._record(graph, found, public, violations)
            for found in graph.find_matching_direct_imports(
                    import_expression=f"{importer_root}.** -> {provider}"):
                self._record(graph, found, public, violations)
        return ContractCheck(kept=not violations, metadata={"violations": sorted(violations)})

    @staticmethod
    def _record(graph: Any, found: dict[str, str], public: set[str],
                violations: list[tuple[str, str, str]]) -> None:
        imported = found["imported"]
        if imported in public:
            return
        details = graph.get_import_details(importer=found["importer"], imported=imported)
        lines = ", ".join(str(d["line_number"]) for d in details) or "?"
        violations.append((found["importer"], imported, lines))

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, imported, lines in check.metadata["violations"]:
            output.print_error(f"{importer} -> {imported} (l.{lines}): {imported} is not a "
                               "public module", bold=False)
        output.new_line()
        output.print("Public modules: " + ", ".join(self.public_modules))  # type: ignore[arg-type]
