"""Neutron 29.0.0's VXLAN type driver, measured the way benchmarks/ml2_vxlan.py measures
stackcore's. Runs inside the Neutron virtualenv built by ml2_vxlan_neutron_venv.sh; prints
one JSON line. Usage: python ml2_vxlan_neutron.py DB_URL VNI_RANGE ALLOCATIONS
"""

import json
import resource
import sys
import time


def rss_mb():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def main():
    url, vni_range, allocations = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from neutron.conf.plugins.ml2.drivers import driver_type
    from neutron.db.models.plugins.ml2 import vxlanallocation
    from neutron.plugins.ml2.drivers import type_vxlan
    from neutron_lib import context as n_context
    from neutron_lib.db import api as db_api
    from oslo_config import cfg
    from oslo_db import options as db_options

    db_options.set_defaults(cfg.CONF)
    cfg.CONF([], project="neutron")
    driver_type.register_ml2_drivers_vxlan_opts()
    from neutron.conf.plugins.ml2 import config as ml2_config

    ml2_config.register_ml2_plugin_opts()
    from neutron.conf import common as common_config

    cfg.CONF.register_opts(common_config.core_opts)
    cfg.CONF.set_override("vni_ranges", [vni_range], group="ml2_type_vxlan")
    cfg.CONF.set_override("connection", url, group="database")
    engine = db_api.CONTEXT_WRITER.get_engine()
    vxlanallocation.VxlanAllocation.__table__.create(engine, checkfirst=True)
    base_rss = rss_mb()

    timings = {}
    for label in ("first_start", "second_start"):
        start = time.perf_counter()
        driver = type_vxlan.VxlanTypeDriver()
        driver.initialize()
        timings[label] = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    ctx = n_context.get_admin_context()
    latencies, calls = [], []
    for _ in range(allocations):
        start = time.perf_counter()
        with db_api.CONTEXT_WRITER.using(ctx):
            call = time.perf_counter()
            segment = driver.allocate_tenant_segment(ctx)
            calls.append(time.perf_counter() - call)
        latencies.append(time.perf_counter() - start)
        assert segment is not None
    print(json.dumps({"first_start_s": timings["first_start"],
                      "second_start_s": timings["second_start"],
                      "base_rss_mb": base_rss, "peak_rss_mb": peak_mb,
                      "latencies_s": latencies, "calls_s": calls}))


if __name__ == "__main__":
    main()
