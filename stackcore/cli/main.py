"""The ``stackcore`` command.

Subcommands:

* ``drivers`` - every installed plugin of every family, with contract status and capabilities;
* ``matrix`` - the support matrix (declarations joined with conformance results);
* ``conformance`` - run the conformance suites against installed drivers;
* ``service`` - run one service (scheduler, compute) from a config file;
* ``db`` - migrate (``sync``) or inspect (``version``, ``check``) the database's schema;
* ``demo`` - the main job: build a small embedded cloud, use it, tear it down.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from stackcore import exception, families
from stackcore.cli import db as db_cli


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
                "status": found.status,
                "contract": {"ok": "ok", "broken": "error"}.get(found.status, found.status),
                "contract_version": contract.version,
                "problems": [found.error] if found.status == loader.BROKEN else [],
                "missing": found.error if found.status == loader.UNAVAILABLE else "",
                "hint": found.hint,
                "capabilities": contract.declared(found.plugin.cls) if found.plugin else {},
            })
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(_drivers_table(rows))
    return 0 if all(r["status"] != loader.BROKEN for r in rows) else 1


def _drivers_table(rows: list[dict[str, Any]]) -> str:
    """Aligned columns; under a row, the contract problems (broken) or what is missing and how
    to install it (unavailable)."""
    header = ["FAMILY", "NAME", "STATUS", "DISTRIBUTION", "CAPABILITIES"]
    table = [[r["family"], r["name"], r["status"],
              f"{r['distribution']} {r['distribution_version']}",
              ", ".join(k for k, v in r["capabilities"].items() if v) or "-"] for r in rows]
    widths = [max(len(line[i]) for line in [header, *table]) for i in range(len(header))]
    out = []
    for row, line in zip([None, *rows], [header, *table], strict=True):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                   .rstrip())
        if row is None:
            continue
        for problem in row["problems"]:
            out += [f"    {text}" for text in str(problem).splitlines()]
        if row["status"] == "unavailable":
            out.append(f"    unavailable: {row['missing']}; install: {row['hint']}")
    return "\n".join(out)


def _matrix(args: argparse.Namespace) -> int:
    from stackcore import matrix

    built = matrix.build(args.results)
    if args.format == "json":
        print(json.dumps(matrix.as_json(built), indent=2))
    elif args.format == "rst":
        print(matrix.render_rst(built))
    else:
        print(matrix.render_text(built))
    return 0


def _config_variants(config_dir: str, family: str, name: str) -> list[tuple[str, str | None]]:
    """``[(variant, config path)]`` for a driver: ``FAMILY-NAME.conf`` and
    ``FAMILY-NAME@VARIANT.conf`` in ``config_dir``; ``[]`` when there is none."""
    import glob

    if not config_dir:
        return []
    found: list[tuple[str, str | None]] = []
    plain = os.path.join(config_dir, f"{family}-{name}.conf")
    if os.path.isfile(plain):
        found.append(("", plain))
    for path in sorted(glob.glob(os.path.join(config_dir, f"{family}-{name}@*.conf"))):
        variant = os.path.basename(path)[len(f"{family}-{name}@"):-len(".conf")]
        found.append((variant, path))
    return found


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


def _commit() -> str:
    """The git commit of the working directory, when it is a checkout ("" otherwise)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _conformance(args: argparse.Namespace) -> int:
    """Run each selected family's suite once per installed driver and config variant."""
    import datetime
    import platform
    import shutil
    import tempfile

    from stackcore import matrix
    from stackcore.plugins import loader

    def now() -> str:
        return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")

    run = args.run or os.environ.get("STACKCORE_CONFORMANCE_RUN") or (
        f"{platform.node()}-{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%SZ}")
    started = now()
    os.makedirs(args.results, exist_ok=True)
    jobs: list[tuple[str, list[str]]] = []
    skipped: dict[str, str] = {}
    workdir = tempfile.mkdtemp(prefix="stackcore-conformance-")
    try:
        for family in families.select(args.family):
            if not family.suite:
                continue
            for found in loader.discover(family.namespace):
                if args.driver and found.name not in args.driver:
                    continue
                if f"{family.name}:{found.name}" in (args.exclude or ()):
                    skipped[f"{family.name}:{found.name}"] = "excluded (--exclude)"
                    continue
                variants = _config_variants(args.config_dir, family.name, found.name)
                if not variants:
                    if args.require_config:
                        skipped[f"{family.name}:{found.name}"] = (
                            f"no {family.name}-{found.name}.conf in {args.config_dir}; "
                            "--require-config")
                        continue
                    variants = [("", None)]
                for variant, config in variants:
                    label = f"{family.name}:{found.name}" + (f"@{variant}" if variant else "")
                    result = f"{family.name}-{found.name}" + (f"@{variant}" if variant else "")
                    command = [
                        sys.executable, "-m", "pytest", "--pyargs", family.suite,
                        "-o", "python_files=*.py", "-p", "no:cacheprovider", "-q", "-rfEsX",
                        # a plugin unrelated to the kit, ~1 s of imports per suite run
                        "-p", "no:hypothesispytest",
                        # where each suite's time goes, in every run's log
                        "--durations=5", "--durations-min=1",
                        "--stackcore-driver", f"{family.name}:{found.name}",
                        "--stackcore-run", run,
                        "--stackcore-results", os.path.join(args.results, f"{result}.json"),
                    ]
                    if config is not None:
                        command += ["--stackcore-config", _expand_config(config, workdir)]
                    jobs.append((label, command))
        for label, why in skipped.items():
            print(f"== conformance {label}: not run ({why})", flush=True)
        # Suites with a config file (real backends: the slow ones) first, so that parallel
        # runs end together; results are printed in that order.
        jobs.sort(key=lambda job: "--stackcore-config" not in job[1])
        outcomes = _run_jobs(jobs, max(1, args.jobs), workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = [label for label, ok in outcomes.items() if not ok]
    with open(os.path.join(args.results, matrix.RUN_FILE), "w", encoding="utf-8") as handle:
        json.dump({"run": run, "commit": os.environ.get("STACKCORE_CONFORMANCE_COMMIT")
                   or _commit(), "host": platform.node(), "started_at": started,
                   "finished_at": now(),
                   "drivers": {label: "pass" if ok else "fail"
                               for label, ok in sorted(outcomes.items())},
                   "not_run": skipped}, handle, indent=2, sort_keys=True)
        handle.write("\n")
    if failed:
        print(f"conformance failed for: {', '.join(failed)}")
        return 1
    return 0


def _run_jobs(jobs: list[tuple[str, list[str]]], parallel: int,
              workdir: str) -> dict[str, bool]:
    """Run the suites, ``parallel`` at a time; each one's output is printed in one piece when
    it ends (so parallel runs never interleave), with its wall time.

    A suite with a configuration (a real backend) runs in its own process; the others - cheap
    suites of backend-free plugins, where starting an interpreter would cost more than the
    suite - share ``parallel`` worker processes (:mod:`stackcore.testing.batch`)."""
    import concurrent.futures
    import time

    def one(label: str, command: list[str]) -> list[tuple[str, bool, str]]:
        started = time.monotonic()
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        took = time.monotonic() - started
        return [(label, proc.returncode == 0,
                 f"== conformance {label} ({took:.1f} s)\n{proc.stdout}{proc.stderr}")]

    def batch(index: int, part: list[tuple[str, list[str]]]) -> list[tuple[str, bool, str]]:
        path = os.path.join(workdir, f"batch-{index}.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump([(label, command[3:]) for label, command in part], handle)
        proc = subprocess.run([sys.executable, "-m", "stackcore.testing.batch", path],
                              capture_output=True, text=True, check=False)
        done = {}
        for line in proc.stdout.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                done[record["label"]] = (
                    record["status"] == 0,
                    f"== conformance {record['label']} ({record['seconds']:.1f} s, "
                    f"batch {index})\n{record['output']}")
        return [(label, *done.get(label, (False, f"== conformance {label}: batch {index} "
                                                 f"ended before it ({proc.returncode}):\n"
                                                 f"{proc.stderr[-2000:]}")))
                for label, _ in part]

    singles = [job for job in jobs if "--stackcore-config" in job[1]]
    shared = [job for job in jobs if "--stackcore-config" not in job[1]]
    units: list[Any] = [functools.partial(one, *job) for job in singles]
    units += [functools.partial(batch, i, shared[i::parallel])
              for i in range(min(parallel, len(shared)))]
    outcomes: dict[str, bool] = {}
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        for results in pool.map(lambda unit: unit(), units):
            for label, ok, text in results:
                print(text.rstrip(), flush=True)
                outcomes[label] = ok
    return outcomes


def _service(args: argparse.Namespace) -> int:
    """Run one service until SIGTERM/SIGINT: exits within 5 s of the first signal, the work
    in progress finished or left for the next start (see :mod:`stackcore.lifecycle`)."""
    from stackcore import lifecycle

    lifecycle.block_stop_signals()  # before the Cloud starts any thread
    from stackcore.cloud import Cloud

    clouds: list[Cloud] = []

    def start() -> None:
        clouds.append(Cloud(args.config_file, services=[args.name]))

    def stop() -> None:
        for cloud in clouds:
            cloud.close()

    lifecycle.run_until_signalled(
        f"stackcore service {args.name}", start, stop,
        ready=lambda: print(f"stackcore {args.name} service running", flush=True))
    return 0  # not reached: run_until_signalled ends the process


def _demo(args: argparse.Namespace) -> int:
    from stackcore.demo import run

    return run(hosts=args.hosts, real=not args.fake)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackcore", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true",
                        help="log at DEBUG (over the config file's [DEFAULT] debug)")
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
    p.add_argument("--exclude", action="append", metavar="FAMILY:NAME",
                   help="do not run this driver here (e.g. volume:lvm, which needs "
                   "device-mapper: tools/tiers/guest.sh runs it in the full-kernel guest)")
    p.add_argument("--require-config", action="store_true",
                   help="run only drivers that have a config file in --config-dir")
    p.add_argument("--results", default=".stackcore-conformance")
    p.add_argument("--run", default="", help="identifier of this run, recorded in the results "
                   "(default: $STACKCORE_CONFORMANCE_RUN, else host and time)")
    p.add_argument("--jobs", type=int, default=1, help="suites run at the same time")
    p.set_defaults(func=_conformance)

    p = sub.add_parser("service", help="run one service from a config file")
    p.add_argument("name", choices=families.all_services())
    p.add_argument("--config-file", required=True)
    p.set_defaults(func=_service)

    db_cli.register(sub)

    p = sub.add_parser("demo", help="build a small embedded cloud, use it, tear it down")
    p.add_argument("--hosts", type=int, default=2, help="fake compute hosts (with --fake)")
    p.add_argument("--fake", action="store_true",
                   help="use the fakes only, even where a real backend is available")
    p.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None, *, configure_logging: bool | None = None) -> int:
    """The ``stackcore`` command. ``configure_logging`` (default: only when run as the console
    script, ``argv`` None) sets up oslo.log from the command's config file; a test or a program
    calling ``main([...])`` keeps its own logging (oslo.log replaces the root's handlers)."""
    args = build_parser().parse_args(argv)
    if configure_logging if configure_logging is not None else argv is None:
        from stackcore import logs

        # [DEFAULT] debug, log_file, log_dir, use_json of the command's config file: only the
        # commands configure logging, never the library (see stackcore.logs)
        logs.setup([args.config_file] if getattr(args, "config_file", None) else [],
                   f"stackcore-{args.name}" if args.command == "service"
                   else f"stackcore-{args.command}", debug=True if args.debug else None)
    try:
        if getattr(args, "family", None):

            families.select(args.family)  # an unknown family is an error, not an empty list
        return int(args.func(args))
    except exception.StackcoreError as err:
        print(f"stackcore: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `stackcore drivers | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
