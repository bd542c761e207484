"""The sample configuration files: ``oslo-config-generator`` run on each distribution's committed
generator config (what ``tox -e genconfig`` runs) lists every option of every installed driver,
in the section a deployment sets it in, with its help."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stackcore import families
from stackcore.image.store import CONFORMANCE_SECTION as STORE_SECTION
from stackcore.volume.backup.driver import CONFORMANCE_SECTION as BACKUP_SECTION
from stackcore.volume.driver import CONFORMANCE_SECTION as BACKEND_SECTION

ROOT = Path(__file__).resolve().parents[2]
CORE_CONFIG = ROOT / "etc" / "oslo-config-generator" / "stackcore.conf"
DRIVERS_CONFIG = ROOT / "drivers" / "etc" / "oslo-config-generator" / "stackcore-drivers.conf"
DRIVERS_DIST = "stackcore-drivers"

Sample = dict[tuple[str, str], str]  # (section, option) -> the help comment above it


def _generate(config: Path, out: Path) -> str:
    """Run the installed ``oslo-config-generator`` console script, as tox -e genconfig does."""
    script = Path(sys.executable).parent / "oslo-config-generator"
    done = subprocess.run([str(script), "--config-file", str(config), "--output-file", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{script} --config-file {config}: {done.stderr}"
    return out.read_text()


def _parse(text: str) -> Sample:
    """Each ``#name = default`` line of a sample, with the comment block above it."""
    found: Sample = {}
    section, comment = "", []
    for line in text.splitlines():
        if header := re.fullmatch(r"\[(.+)\]", line):
            section, comment = header.group(1), []
        elif option := re.fullmatch(r"#(\w+) =( .*)?", line):
            found[(section, option.group(1))] = " ".join(comment)
            comment = []
        elif line.startswith("# "):
            comment.append(line[2:].strip())
        elif not line.strip():
            comment = []
    return found


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sample]:
    out = tmp_path_factory.mktemp("samples")
    return {"core": _parse(_generate(CORE_CONFIG, out / "stackcore.conf.sample")),
            "drivers": _parse(_generate(DRIVERS_CONFIG, out / "stackcore-drivers.conf.sample"))}


def _drivers_installed() -> bool:
    try:
        importlib.metadata.distribution(DRIVERS_DIST)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_drivers = pytest.mark.skipif(not _drivers_installed(),
                                   reason=f"{DRIVERS_DIST} is not installed")


def test_core_sample_has_core_options_only(samples: dict[str, Sample]) -> None:
    core = samples["core"]
    for key in [("DEFAULT", "host"), ("database", "connection"),
                ("volume", "enabled_backends"), ("<backend>", "volume_driver")]:
        assert key in core, f"{key} missing from the core sample: {sorted(core)[:20]}..."
    leaked = [k for k in core if k[1] in ("volume_group", "rbd_pool", "connection_uri")]
    assert not leaked, f"driver options in the core distribution's sample: {leaked}"


@needs_drivers
@pytest.mark.parametrize(("section", "option", "help_start"), [
    ("<backend>", "volume_group", "Volume group holding the volumes."),
    ("<backend>", "thin_pool", "Thin pool LV"),
    ("<backend>", "target_port", "Port of the tgt portal."),
    ("<backend>", "nfs_shares_config", ""),
    ("<backend>", "rbd_pool", "RADOS pool holding the volumes."),
    ("image_store_rbd", "rbd_store_pool", "RADOS pool of the images."),
    ("libvirt", "connection_uri", "libvirt connection URI."),
    ("ovs", "integration_bridge", ""),
    ("linux_bridge", "physical_interface_mappings", ""),
])
def test_drivers_sample_names_driver_options(samples: dict[str, Sample], section: str,
                                             option: str, help_start: str) -> None:
    drivers = samples["drivers"]
    assert (section, option) in drivers, (
        f"[{section}] {option} missing from the drivers' sample; it has "
        f"{sorted(k for k in drivers if k[0] == section)}")
    text = drivers[(section, option)]
    assert text.startswith(help_start) and len(text) > 10, \
        f"[{section}] {option}: help {text!r}, expected it to start with {help_start!r}"


def _sample_section(group: str, plugin: str) -> str:
    """The sample's section for a group a plugin's ``list_opts`` names: the kit's section
    names stand for the deployment's backend section and the store's and backup driver's own
    groups."""
    return {BACKEND_SECTION: "<backend>", STORE_SECTION: f"image_store_{plugin}",
            BACKUP_SECTION: f"backup_{plugin}"}.get(group, group)


@needs_drivers
def test_every_driver_option_is_in_a_sample_with_its_help(samples: dict[str, Sample]) -> None:
    """Every plugin of the drivers distribution, in every family's namespace: each option its
    ``list_opts`` declares is in the core's or the drivers' sample, under its help text."""
    both = {**samples["core"], **samples["drivers"]}
    checked, missing = 0, []
    for kind in families.kinds():
        for ep in importlib.metadata.entry_points(group=kind.namespace):
            if ep.dist is None or ep.dist.name != DRIVERS_DIST:
                continue
            for group, opts in ep.load().list_opts():
                section = _sample_section(group, ep.name)
                for opt in opts:
                    checked += 1
                    text = both.get((section, opt.name))
                    if text is None or _words(opt.help or "") not in _words(text):
                        missing.append(f"{kind.name}:{ep.name} [{section}] {opt.name} "
                                       f"(sample help: {text!r})")
    assert checked > 40, f"only {checked} driver options found: are the drivers installed?"
    assert not missing, "driver options missing from the samples:\n" + "\n".join(missing)


@needs_drivers
def test_drivers_generator_config_lists_every_namespace() -> None:
    """A driver namespace added to drivers/setup.cfg but not to the generator config would be
    left out of the sample silently."""
    listed = set(re.findall(r"^namespace = (\S+)$", DRIVERS_CONFIG.read_text(), re.M))
    registered = {ep.name for ep in importlib.metadata.entry_points(group="oslo.config.opts")
                  if ep.dist is not None and ep.dist.name == DRIVERS_DIST}
    assert listed == registered, (f"{os.path.relpath(DRIVERS_CONFIG, ROOT)} lists {sorted(listed)}"
                                  f", {DRIVERS_DIST} registers {sorted(registered)}")
