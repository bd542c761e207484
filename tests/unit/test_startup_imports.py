"""Start-up stays cheap (issue 18): ``import stackcore`` and loading + verifying every installed
plugin of every family import none of the heavy libraries, which load on first use only.

Each check runs in a fresh interpreter: in the test process everything is imported already.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: libraries that cost tens of milliseconds to import, each needed by a Cloud or a command only
HEAVY = ("alembic", "jsonschema", "numpy", "oslo_config", "oslo_db", "oslo_log",
         "oslo_messaging", "oslo_policy", "sqlalchemy")


def _heavy_imported(body: str) -> list[str]:
    code = (f"import json, sys\n{body}"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    imported: list[str] = json.loads(out.strip().splitlines()[-1])
    return imported


def test_import_stackcore_imports_no_heavy_library() -> None:
    imported = _heavy_imported("import stackcore\n")
    assert imported == [], f"`import stackcore` imported {imported}"


def test_loading_every_plugin_imports_no_heavy_library() -> None:
    body = ("import stackcore\n"
            "from stackcore import families\n"
            "from stackcore.plugins import loader\n"
            "found = [d for f in families.kinds() for d in loader.discover(f.namespace, "
            "f.contract())]\n"
            "assert found, 'no plugin discovered'\n")
    imported = _heavy_imported(body)
    assert imported == [], (
        f"loading and verifying every plugin of every family imported {imported}: a plugin "
        "module (or what it imports) imports it at module level; import it on first use")
