"""Configuration fails early, naming section, option and value - and never shows secrets."""

from __future__ import annotations

import pytest

import stackcore
from stackcore import conf, exception


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "stackcore.conf"
    path.write_text(text)
    return str(path)


def test_bad_value_names_section_option_value(tmp_path) -> None:
    path = _write(tmp_path, "[scheduler]\ncpu_allocation_ratio = lots\n")
    with pytest.raises(exception.ConfigError) as caught:
        stackcore.Cloud(path)
    message = str(caught.value)
    assert "[scheduler] cpu_allocation_ratio" in message and "'lots'" in message


def test_out_of_range_value(tmp_path) -> None:
    path = _write(tmp_path, "[DEFAULT]\nreport_interval = 0\n")
    with pytest.raises(exception.ConfigError, match=r"\[DEFAULT\] report_interval"):
        stackcore.Cloud(path)


def test_missing_config_file_is_named(tmp_path) -> None:
    with pytest.raises(exception.ConfigError, match="nope.conf"):
        stackcore.Cloud(str(tmp_path / "nope.conf"))


def test_unknown_override_is_named() -> None:
    with pytest.raises(exception.ConfigError, match=r"unknown option \[compute\] colour"):
        stackcore.Cloud(overrides={"compute": {"colour": "blue"}})


def test_unknown_driver_fails_start_up_naming_it() -> None:
    with pytest.raises(exception.PluginNotFound, match="'hyperv'"):
        stackcore.Cloud(overrides={"compute": {"driver": "hyperv"}})


def test_unknown_transport_scheme() -> None:
    with pytest.raises(exception.ConfigError, match="'carrier'"):
        stackcore.Cloud(overrides={"DEFAULT": {"transport_url": "carrier://x"}})


def test_database_password_never_in_errors(tmp_path) -> None:
    url = "postgresql+psycopg2://admin:hunter2@127.0.0.1:1/nothing"
    with pytest.raises(exception.StackcoreError) as caught:
        stackcore.Cloud(overrides={"database": {"connection": url}})
    assert "hunter2" not in str(caught.value)


def test_options_are_per_cloud_not_global() -> None:
    a = conf.load(overrides={"compute": {"availability_zone": "az-a"}})
    b = conf.load()
    assert a.compute.availability_zone == "az-a"
    assert b.compute.availability_zone == "nova"


def test_list_opts_covers_every_group() -> None:
    groups = {group for group, _ in conf.opts.list_opts()}
    assert {"DEFAULT", "database", "compute", "scheduler", "fake_hypervisor"} <= groups
