"""The layer contracts of setup.cfg (run by ``lint-imports`` in CI's lint step) hold, and each
one can fail: adding the import it forbids to the real import graph breaks exactly it."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import grimp
import pytest
from importlinter.api import read_configuration
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract

from stackcore.testing.importlinter import PublicApiContract

TYPES = {"forbidden": ForbiddenContract, "layers": LayersContract,
         "public_api": PublicApiContract}

#: contract id -> an import that must break it (importer, imported)
VIOLATIONS = {
    "scheduler-knows-no-family": ("stackcore.scheduler.handler", "stackcore.compute.api"),
    "contracts-not-managers": ("stackcore.compute.driver", "stackcore.compute.manager"),
    "families-layered": ("stackcore.volume.api", "stackcore.compute.api"),
    "core-not-drivers": ("stackcore.cloud", "stackcore_drivers.libvirt.driver"),
    "drivers-use-public-api": ("stackcore_drivers.volume.nfs", "stackcore.volume.manager"),
}


@pytest.fixture(scope="module")
def config() -> dict:
    return read_configuration()


@pytest.fixture(scope="module")
def graph(config) -> grimp.ImportGraph:
    return grimp.build_graph(*config["session_options"]["root_packages"],
                             exclude_type_checking_imports=True)


def _contract(config, contract_id):
    (options,) = [c for c in config["contracts_options"] if c["id"] == contract_id]
    options = {k: v for k, v in options.items() if k not in ("id", "name", "type")}
    found = next(c for c in config["contracts_options"] if c["id"] == contract_id)
    return TYPES[found["type"]](found["name"], config["session_options"], options)


def test_every_contract_has_a_violation_here(config) -> None:
    ids = {c["id"] for c in config["contracts_options"]}
    assert ids == set(VIOLATIONS), f"contracts {sorted(ids)} vs tested {sorted(VIOLATIONS)}"


@pytest.mark.parametrize("contract_id", sorted(VIOLATIONS))
def test_contract_holds_and_breaks_on_its_violation(config, graph, contract_id) -> None:
    contract = _contract(config, contract_id)
    kept = contract.check(graph, verbose=False)
    assert kept.kept, f"{contract_id} is broken in the code today: {kept.metadata}"
    importer, imported = VIOLATIONS[contract_id]
    broken_graph = copy.deepcopy(graph)
    broken_graph.add_import(importer=importer, imported=imported, line_number=1,
                            line_contents=f"import {imported}")
    broken = contract.check(broken_graph, verbose=False)
    assert not broken.kept, f"{contract_id} kept although {importer} imports {imported}"
    assert imported in repr(broken.metadata) or importer in repr(broken.metadata), \
        f"{contract_id}: the report does not name the import: {broken.metadata}"


def test_lint_imports_command_passes() -> None:
    """What CI runs: ``lint-imports`` with the checkout's configuration."""
    command = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([command], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"
    assert "5 kept, 0 broken" in result.stdout, result.stdout
