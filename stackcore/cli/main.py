"""The ``stackcore`` command.

Subcommands:

* ``drivers`` - every installed plugin of every family, with contract status and capabilities;
* ``matrix`` - the support matrix (declarations joined with conformance results);
* ``conformance`` - run the conformance suites against installed drivers;
* ``service`` - run one service (scheduler, compute) from a config file;
* ``demo`` - the main job: build a small embedded cloud, use it, tear it down.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from stackcore import exception, families


def _drivers(args: argparse.Namespace) -> int:
    from stackcore.plugins import loader

    rows: list[dict[str, Any]] = []
    for family in families.select(args.family):
        contract = family.contract()
        for found in loader.discover(family.namespace, contract):
            rows.append({
                "family": family.name,
                "namespace": family.namespace,
                "name": found.name,
                "target": found.target,
                "distribution": found.distribution,
                "distribution_version": found.version,
                "driver_version": getattr(found.plugin.cls, "VERSION", None)
                if found.plugin else None,
                "contract": "ok" if found.plugin else "error",
                "contract_version": contract.version,
                "problems": [] if found.plugin else [found.error],
                "capabilities": contract.declared(found.plugin.cls) if found.plugin else {},
            })
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            caps = ", ".join(k for k, v in row["capabilities"].items() if v) or "-"
            print(f"{row['family']:<22} {row['name']:<14} {row['contract']:<6} "
                  f"{row['distribution']} {row['distribution_version']}  [{caps}]")
            for problem in row["problems"]:
                print(f"    {problem}")
    return 0 if all(r["contract"] == "ok" for r in rows) else 1


def _matrix(args: argparse.Namespace) -> int:
    from stackcore import matrix

    built = matrix.build(args.results)
    if args.format == "json":
        print(json.dumps({f: [r.__dict__ for r in rows] for f, (_, rows) in built.items()},
                         indent=2))
    elif args.format == "rst":
        print(matrix.render_rst(built))
    else:
        print(matrix.render_text(built))
    return 0


def _config_variants(config_dir: str, family: str, name: str) -> list[tuple[str, str | None]]:
    """``[(variant, config path)]`` for a driver: ``FAMILY-NAME.conf`` and
    ``FAMILY-NAME@VARIANT.conf`` in ``config_dir``; ``[("", None)]`` when there is none."""
    import glob

    if not config_dir:
        return [("", None)]
    found: list[tuple[str, str | None]] = []
    plain = os.path.join(config_dir, f"{family}-{name}.conf")
    if os.path.isfile(plain):
        found.append(("", plain))
    for path in sorted(glob.glob(os.path.join(config_dir, f"{family}-{name}@*.conf"))):
        variant = os.path.basename(path)[len(f"{family}-{name}@"):-len(".conf")]
        found.append((variant, path))
    return found or [("", None)]


def _expand_config(path: str, workdir: str) -> str:
    """Copy a config template with ``${VAR}`` taken from the environment; a variable that is
    not set is an error naming it (real-backend settings come from tools/backends/env.sh)."""
    import re

    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    missing = sorted({v for v in re.findall(r"\$\{(\w+)\}", text) if v not in os.environ})
    if missing:
        raise exception.ConfigError(
            f"{path} needs environment variable(s) {', '.join(missing)} "
            "(start the backends with tools/backends/up.sh and source its env.sh)"
        )
    out = os.path.join(workdir, os.path.basename(path))
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(re.sub(r"\$\{(\w+)\}", lambda m: os.environ[m.group(1)], text))
    return out


def _conformance(args: argparse.Namespace) -> int:
    """Run each selected family's suite once per installed driver and config variant."""
    import tempfile

    from stackcore.plugins import loader

    failed = []
    workdir = tempfile.mkdtemp(prefix="stackcore-conformance-")
    for family in families.select(args.family):
        if not family.suite:
            continue
        for found in loader.discover(family.namespace):
            if args.driver and found.name not in args.driver:
                continue
            for variant, config in _config_variants(args.config_dir, family.name, found.name):
                label = f"{family.name}:{found.name}" + (f"@{variant}" if variant else "")
                result = f"{family.name}-{found.name}" + (f"@{variant}" if variant else "")
                command = [
                    sys.executable, "-m", "pytest", "--pyargs", family.suite,
                    "-o", "python_files=*.py", "-p", "no:cacheprovider", "-q", "-rfEs",
                    "--stackcore-driver", f"{family.name}:{found.name}",
                    "--stackcore-results", os.path.join(args.results, f"{result}.json"),
                ]
                if config is not None:
                    command += ["--stackcore-config", _expand_config(config, workdir)]
                print(f"== conformance {label}", flush=True)
                if subprocess.call(command) != 0:
                    failed.append(label)
    if failed:
        print(f"conformance failed for: {', '.join(failed)}")
        return 1
    return 0


def _service(args: argparse.Namespace) -> int:
    import signal
    import threading

    from stackcore.cloud import Cloud

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Cloud(args.config_file, services=[args.name]):
        print(f"stackcore {args.name} service running", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


def _demo(args: argparse.Namespace) -> int:
    from stackcore.demo import run

    return run(hosts=args.hosts, real=not args.fake)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackcore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("drivers", help="list installed plugins and their contract status")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--family")
    p.set_defaults(func=_drivers)

    p = sub.add_parser("matrix", help="print the generated support matrix")
    p.add_argument("--results", default=".stackcore-conformance",
                   help="directory of conformance JSON results")
    p.add_argument("--format", choices=("text", "json", "rst"), default="text")
    p.set_defaults(func=_matrix)

    p = sub.add_parser("conformance", help="run conformance suites against installed drivers")
    p.add_argument("--family")
    p.add_argument("--driver", action="append", help="only these entry-point names")
    p.add_argument("--config-dir", default="",
                   help="directory of FAMILY-NAME.conf files with each driver's options")
    p.add_argument("--require-config", action="store_true",
                   help="run only drivers that have a config file in --config-dir")
    p.add_argument("--results", default=".stackcore-conformance")
    p.set_defaults(func=_conformance)

    p = sub.add_parser("service", help="run one service from a config file")
    p.add_argument("name", choices=families.services())
    p.add_argument("--config-file", required=True)
    p.set_defaults(func=_service)

    p = sub.add_parser("demo", help="build a small embedded cloud, use it, tear it down")
    p.add_argument("--hosts", type=int, default=2, help="fake compute hosts (with --fake)")
    p.add_argument("--fake", action="store_true",
                   help="use the fakes only, even where a real backend is available")
    p.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "family", None):

            families.select(args.family)  # an unknown family is an error, not an empty list
        return int(args.func(args))
    except exception.StackcoreError as err:
        print(f"stackcore: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
