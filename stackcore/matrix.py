"""The support matrix: installed plugins, their declared capabilities and conformance results.

Never hand-written: ``stackcore matrix`` and the docs build it from what the installed plugins
declare (their ``capabilities`` mapping) and from the JSON results the conformance kit wrote
(one per driver and config variant; see :mod:`stackcore.testing.plugin`).

One row per plugin, one column per feature (the ``contract`` column first, then every feature
a suite reported, then the family's capabilities). A cell is the feature's result:

``pass``
    every test of the feature passed;
``FAIL``
    a test failed - in its body or in the check after it (a leak, a failed teardown);
``skip``
    a test was skipped, always with the reason (a feature this host cannot offer);
``unsupported``
    a capability the plugin declares unsupported, confirmed: its tests fail;
``UNEXPECTED SUCCESS``
    a capability declared unsupported whose tests pass: the declaration is wrong;
``declared`` / ``-``
    not run yet: the capability is declared supported / not declared; ``not run`` for other
    features.

FAIL, skip and UNEXPECTED SUCCESS cells carry their reasons (footnotes in text and rst). The
``contract`` column says ``ok``, ``BROKEN`` (the plugin breaks its contract) or
``unavailable`` (a backend library it needs is not installed: the install hint is given).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Iterable
from typing import Any

from stackcore import families
from stackcore.plugins import loader

#: Severity of a conformance outcome; the worst one is a feature's result.
RANK = {"fail": 4, "unexpected-success": 3, "unsupported": 2, "skip": 1, "pass": 0}

LABELS = {"pass": "pass", "fail": "FAIL", "skip": "skip", "unsupported": "unsupported",
          "unexpected-success": "UNEXPECTED SUCCESS"}

#: Name of the file ``stackcore conformance`` writes next to the results: which run made them.
RUN_FILE = "run.json"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One feature of one plugin: its result (an outcome, or ``declared``/``-``/``not run``)
    and the reasons of its failures, skips and unexpected successes."""

    result: str
    reasons: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return LABELS.get(self.result, self.result)


@dataclasses.dataclass(frozen=True)
class Row:
    family: str
    driver: str
    distribution: str
    version: str
    status: str  # ok | broken | unavailable
    problem: str  # why broken / what is missing ("" when ok)
    hint: str  # how to install what is missing (unavailable only)
    cells: dict[str, Cell]


@dataclasses.dataclass(frozen=True)
class Matrix:
    """``tables``: ``{family: (columns, rows)}``; ``runs``: the runs the results came from."""

    tables: dict[str, tuple[list[str], list[Row]]]
    runs: list[dict[str, Any]]


def load_results(results_dir: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Results per (family, driver); several runs of one driver (config variants, e.g. libvirt
    on test:///default and on qemu:///system) merge feature by feature: the worst result wins
    and the reasons of every variant are kept."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
        if not (isinstance(doc, dict) and "family" in doc and "driver" in doc):
            continue
        merged = found.setdefault((doc["family"], doc["driver"]),
                                  {"features": {}, "runs": set()})
        merged["runs"].add(str(doc.get("run", "")))
        for feature, outcome in doc.get("features", {}).items():
            old = merged["features"].get(feature)
            reasons = sorted({*(old or {}).get("reasons", []), *outcome.get("reasons", [])})
            if old is None or RANK[outcome["result"]] > RANK[old["result"]]:
                merged["features"][feature] = {**outcome, "reasons": reasons}
            else:
                old["reasons"] = reasons
    return found


def load_runs(results_dir: str) -> list[dict[str, Any]]:
    """What ``stackcore conformance`` recorded about the run(s) that wrote ``results_dir``."""
    path = os.path.join(results_dir, RUN_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        doc = json.load(handle)
    return [doc] if isinstance(doc, dict) else []


def _capability_cell(declared: bool, outcome: dict[str, Any] | None) -> Cell:
    if outcome is None:
        return Cell("declared" if declared else "-")
    return Cell(outcome["result"], tuple(outcome.get("reasons", ())))


def build(results_dir: str = ".stackcore-conformance") -> Matrix:
    """The matrix of every plugin kind with installed plugins."""
    results = load_results(results_dir)
    tables: dict[str, tuple[list[str], list[Row]]] = {}
    for kind in families.kinds():
        contract = kind.contract()
        found = loader.discover(kind.namespace, contract)
        features: list[str] = []
        for item in found:
            for feature in results.get((kind.name, item.name), {}).get("features", {}):
                if feature not in contract.capabilities and feature not in features:
                    features.append(feature)
        columns = ["contract", *features, *sorted(contract.capabilities)]
        rows = []
        for item in found:
            outcomes = results.get((kind.name, item.name), {}).get("features", {})
            declared = contract.declared(item.plugin.cls) if item.plugin else {}
            cells = {"contract": Cell({"ok": "ok", "broken": "BROKEN"}.get(item.status,
                                                                         item.status))}
            for feature in features:
                outcome = outcomes.get(feature)
                cells[feature] = Cell("not run") if outcome is None else Cell(
                    outcome["result"], tuple(outcome.get("reasons", ())))
            for cap in sorted(contract.capabilities):
                cells[cap] = _capability_cell(declared.get(cap, False), outcomes.get(cap))
            rows.append(Row(kind.name, item.name, item.distribution, item.version, item.status,
                            item.error or "", item.hint, cells))
        tables[kind.name] = (columns, rows)
    return Matrix(tables, load_runs(results_dir))


def as_json(matrix: Matrix) -> dict[str, Any]:
    return {
        "runs": matrix.runs,
        "families": {
            family: [
                {**{k: v for k, v in dataclasses.asdict(row).items() if k != "cells"},
                 "cells": {c: {"result": cell.result, "reasons": list(cell.reasons)}
                           for c, cell in row.cells.items()}}
                for row in rows
            ]
            for family, (_, rows) in matrix.tables.items()
        },
    }


class _Notes:
    """Footnotes: each distinct reason once, numbered in order of appearance."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}

    def mark(self, cell: Cell) -> str:
        if not cell.reasons:
            return cell.label
        marks = []
        for reason in cell.reasons:
            marks.append(str(self.numbers.setdefault(reason, len(self.numbers) + 1)))
        return f"{cell.label} [{','.join(marks)}]"

    def lines(self) -> Iterable[tuple[int, str]]:
        return ((n, reason) for reason, n in self.numbers.items())


def _status_note(row: Row) -> str:
    if row.status == "unavailable":
        return f"{row.driver}: unavailable - {row.problem}; install: {row.hint}"
    if row.status == "broken":
        return f"{row.driver}: BROKEN - {row.problem}"
    return ""


def describe_runs(matrix: Matrix) -> str:
    """One sentence naming the run(s) the results come from."""
    if not matrix.runs:
        return "No conformance run recorded: capability cells show declarations only."
    parts = []
    for run in matrix.runs:
        what = f"conformance run {run.get('run', '?')}"
        if run.get("commit"):
            what += f" of commit {run['commit'][:12]}"
        what += f", finished {run.get('finished_at', '?')} on {run.get('host', '?')}"
        parts.append(what)
    return "Results of " + "; ".join(parts) + "."


def render_text(matrix: Matrix) -> str:
    lines = [describe_runs(matrix), ""]
    for family, (columns, rows) in matrix.tables.items():
        notes = _Notes()
        header = ["driver", *columns]
        body = [[r.driver, *(notes.mark(r.cells[c]) for c in columns)] for r in rows]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
        lines.append(f"[{family}]")
        for line in [header, *body]:
            lines.append("  ".join(str(x).ljust(w) for x, w in zip(line, widths,
                                                                   strict=False)).rstrip())
        for number, reason in notes.lines():
            lines.append(f"  [{number}] {reason}")
        lines += [f"  {note}" for r in rows if (note := _status_note(r))]
        lines.append("")
    return "\n".join(lines)


def _rst_text(text: str) -> str:
    return " ".join(text.replace("*", r"\*").replace("`", "'").replace("|", r"\|").split())


def render_rst(matrix: Matrix, transpose_above: int = 6) -> str:
    """reST tables, one per family. A table never has more than ``transpose_above`` + 1
    columns when it can be avoided: with more features than drivers, drivers become the
    columns (so a wide family table fits the page)."""
    out = [_rst_text(describe_runs(matrix)), ""]
    for family, (columns, rows) in matrix.tables.items():
        out += [f".. rubric:: {family}", ""]
        if not rows:
            out += ["No plugin of this kind is installed.", ""]
            continue
        notes = _Notes()
        grid = {(r.driver, c): notes.mark(r.cells[c]) for r in rows for c in columns}
        drivers_as_columns = len(columns) > transpose_above and len(rows) < len(columns)
        out += [".. list-table::", "   :header-rows: 1", "   :class: stackcore-matrix", ""]
        if drivers_as_columns:
            out.append("   * - feature")
            out += [f"     - ``{r.driver}``" for r in rows]
            for column in columns:
                out.append(f"   * - {column}")
                out += [f"     - {_rst_text(grid[(r.driver, column)])}" for r in rows]
        else:
            out.append("   * - driver")
            out += [f"     - {c}" for c in columns]
            for row in rows:
                out.append(f"   * - ``{row.driver}``")
                out += [f"     - {_rst_text(grid[(row.driver, c)])}" for c in columns]
        out.append("")
        origin = ", ".join(f"``{r.driver}`` ({_rst_text(r.distribution)} {r.version})"
                           for r in rows)
        out += [f"Plugins: {origin}.", ""]
        for number, reason in notes.lines():
            out += [f"[{number}] {_rst_text(reason)}", ""]
        for row in rows:
            note = _status_note(row)
            if note:
                out += [_rst_text(note), ""]
    return "\n".join(out)
