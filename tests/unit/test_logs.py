"""stackcore.logs (the secret filter, the commands' oslo.log set-up) and the request context
being current for exactly one served call (stackcore.project.context.serving)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from oslo_context import context as oslo_context

from stackcore import logs
from stackcore.project.context import RequestContext, admin_context, current, serving
from stackcore.rpc import base


@pytest.mark.parametrize(("text", "secret"), [
    ("transport rabbit://stackcore:Hunter2pw@10.0.0.1:5672/ down", "Hunter2pw"),
    ("db postgresql+psycopg2://u:pg-Secret@h/db", "pg-Secret"),
    ("{'auth_method': 'CHAP', 'auth_password': 'chapSecret1'}", "chapSecret1"),
    ('{"auth_password": "chapSecret2"}', "chapSecret2"),
    ("tgtadm --op new --mode account --user u --password chapSecret3", "chapSecret3"),
    ("[client.cinder]\n\tkey = AQBcephKeyZZ==\n", "AQBcephKeyZZ=="),
    ("{'key': 'AQBcephKeyYY=='}", "AQBcephKeyYY=="),
    ("password=plain token=tok123", "tok123"),
])
def test_mask_hides_secrets(text: str, secret: str) -> None:
    masked = logs.mask(text)
    assert secret not in masked, f"{secret!r} survived: {masked!r}"
    assert "***" in masked, masked


def test_mask_leaves_ordinary_text_alone() -> None:
    text = "volume driver 'lvm': create_volume of volume v-1 on h@lvm done in 0.012 s"
    assert logs.mask(text) == text


def test_secret_filter_masks_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "connecting to %s", (
        "rabbit://u:TopSecret@h:5672/",), None)
    try:
        raise RuntimeError("auth failed for postgresql://u:TraceSecret@h/db")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert logs.SecretFilter().filter(record) is True
    text = logging.Formatter().format(record)
    assert "TopSecret" not in text and "TraceSecret" not in text, text
    assert "rabbit://u:****@h:5672/" in text, text


def test_setup_reads_the_files_and_names_the_file_after_the_program(tmp_path: Path) -> None:
    conf_file = tmp_path / "svc.conf"
    conf_file.write_text(f"[DEFAULT]\ndebug = true\nlog_dir = {tmp_path}\n")
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        conf = logs.setup([str(conf_file)], "stackcore-unit")
        assert conf.debug is True
        assert root.level == logging.DEBUG, root.level
        logging.getLogger("stackcore.unit").info("to rabbit://u:FileSecret@h/ now")
        for handler in root.handlers:
            handler.flush()
        written = (tmp_path / "stackcore-unit.log").read_text()
        assert "to rabbit://u:****@h/ now" in written, written
        assert "FileSecret" not in written, written
        assert all(any(isinstance(f, logs.SecretFilter) for f in h.filters)
                   for h in root.handlers), root.handlers
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def test_serving_restores_what_was_current() -> None:
    before = oslo_context.get_current()  # what earlier tests of this thread left
    outer = admin_context()
    inner = RequestContext(user_id="u", project_id="p", request_id="req-inner")
    with serving(outer):
        with serving(inner):
            assert current() is inner
        assert current() is outer, current()
        with serving(None):
            assert current() is None, current()
        assert current() is outer
    assert oslo_context.get_current() is before, oslo_context.get_current()


def test_a_served_call_leaves_no_context_on_the_worker_thread() -> None:
    """A worker thread serves a call with a context, then one without: the second must not
    run (and log) under the first's request id."""
    seen: list[str | None] = []

    class Endpoint:
        target = base.Target("t")

        def who(self) -> None:
            found = current()
            seen.append(found.request_id if found is not None else None)

    def worker() -> None:
        with serving(RequestContext(project_id="p", request_id="req-first")):
            payload = base.encode({})
        base.dispatch(Endpoint(), "who", "1.0", payload)
        base.dispatch(Endpoint(), "who", "1.0", base.encode({}))
        seen.append("after" if oslo_context.get_current() is None else "leaked")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == ["req-first", None, "after"], seen
