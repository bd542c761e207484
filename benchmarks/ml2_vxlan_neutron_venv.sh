#!/bin/sh
# Build the Neutron 29.0.0 virtualenv the VXLAN benchmark compares against (never committed:
# it lives under /var/tmp). Usage: benchmarks/ml2_vxlan_neutron_venv.sh [DIR]
set -eu
DIR=${1:-/var/tmp/neutron-bench/venv}
if [ ! -x "$DIR/bin/python" ] || ! "$DIR/bin/python" -c "import neutron" 2>/dev/null; then
    python3 -m venv "$DIR"
    "$DIR/bin/pip" install --quiet "neutron==29.0.0" psycopg2-binary
fi
echo "$DIR/bin/python"
