"""The support matrix: declared capabilities joined with conformance results.

Never hand-written: ``stackcore matrix`` and the docs build it from what the installed drivers
declare (their ``capabilities`` mapping) and from the JSON results the conformance kit wrote.
A cell reads ``yes`` (declared and passing), ``no`` (declared unsupported and confirmed
failing), ``declared`` (declared, not yet run), ``FAIL`` (declared but failing) or ``LIE``
(declared unsupported yet passing).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Any

from stackcore import families
from stackcore.plugins import loader


@dataclasses.dataclass(frozen=True)
class Row:
    family: str
    driver: str
    distribution: str
    version: str
    status: str
    cells: dict[str, str]


def _cell(declared: bool, result: str | None) -> str:
    if result is None:
        return "declared" if declared else "-"
    return {
        "pass": "yes" if declared else "LIE",
        "unexpected-success": "LIE",
        "unsupported": "no",
        "fail": "FAIL",
        "skip": "skipped",
    }.get(result, result)


#: Severity of a conformance outcome; the worst one is a feature's result.
RANK = {"fail": 4, "unexpected-success": 3, "unsupported": 2, "skip": 1, "pass": 0}


def load_results(results_dir: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Results per (family, driver); several runs of one driver (config variants, e.g. libvirt
    on test:///default and on qemu:///system) merge feature by feature, the worst result wins."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
        if not (isinstance(doc, dict) and "family" in doc and "driver" in doc):
            continue
        merged = found.setdefault((doc["family"], doc["driver"]), {"features": {}})
        for feature, outcome in doc.get("features", {}).items():
            old = merged["features"].get(feature)
            if old is None or RANK[outcome["result"]] > RANK[old["result"]]:
                merged["features"][feature] = outcome
    return found


def build(results_dir: str = ".stackcore-conformance") -> dict[str, tuple[list[str], list[Row]]]:
    """``{family: (columns, rows)}`` for every family with installed plugins."""
    results = load_results(results_dir)
    matrix: dict[str, tuple[list[str], list[Row]]] = {}
    for family in families.kinds():
        contract = family.contract()
        columns = ["contract", *sorted(contract.capabilities)]
        rows = []
        for found in loader.discover(family.namespace, contract):
            doc = results.get((family.name, found.name), {})
            features = doc.get("features", {})
            declared = contract.declared(found.plugin.cls) if found.plugin else {}
            cells = {"contract": "ok" if found.plugin else "BROKEN"}
            lifecycle = [f for f in features if f not in contract.capabilities]
            if lifecycle:
                worst = [features[f]["result"] for f in lifecycle]
                if not all(r == "pass" for r in worst):
                    cells["contract"] += " (conformance FAIL)"
            for cap in sorted(contract.capabilities):
                result = features.get(cap, {}).get("result")
                cells[cap] = _cell(declared.get(cap, False), result)
            rows.append(Row(family.name, found.name, found.distribution, found.version,
                            "ok" if found.plugin else (found.error or "broken"), cells))
        matrix[family.name] = (columns, rows)
    return matrix


def render_text(matrix: dict[str, tuple[list[str], list[Row]]]) -> str:
    lines = []
    for family, (columns, rows) in matrix.items():
        header = ["driver", *columns]
        body = [[r.driver, *(r.cells.get(c, "") for c in columns)] for r in rows]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
        lines.append(f"[{family}]")
        for line in [header, *body]:
            lines.append("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=False)))
        lines.append("")
    return "\n".join(lines)


def render_rst(matrix: dict[str, tuple[list[str], list[Row]]]) -> str:
    out = []
    for family, (columns, rows) in matrix.items():
        out += [f".. rubric:: {family}", "", ".. list-table::", "   :header-rows: 1", ""]
        out.append("   * - driver")
        out += [f"     - {c}" for c in columns]
        for row in rows:
            out.append(f"   * - ``{row.driver}`` ({row.distribution} {row.version})")
            out += [f"     - {row.cells.get(c, '')}" for c in columns]
        out.append("")
    return "\n".join(out)
