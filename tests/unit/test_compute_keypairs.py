"""Keypairs (imported OpenSSH public keys of a user) and a server's key and user data, over
SQLite and PostgreSQL: accepted and refused key types, Nova's MD5 fingerprint (checked
against ``ssh-keygen -l -E md5``), names, users, the admin rule, the quota, and the copy of
the key and the user data a server keeps."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from stackcore import exception
from stackcore.compute import models
from stackcore.compute.keypairs import fingerprint, parse_public_key
from stackcore.project import RequestContext

ALICE = RequestContext(user_id="alice", project_id="project-a", roles=["member"])
BOB = RequestContext(user_id="bob", project_id="project-a", roles=["member"])
ROOT = RequestContext(user_id="root", project_id="ops", roles=["admin"])


def _openssh(key) -> str:
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()


def _independent_md5(line: str) -> str:
    """The MD5 fingerprint computed here, from the line's base64 blob."""
    digest = hashlib.md5(base64.b64decode(line.split()[1]), usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def _generated_keys(tmp_path: Path) -> list[tuple[str, str, str]]:
    """``[(label, public key line, expected fingerprint)]`` for an ed25519, an ECDSA-384 and
    an RSA-3072 key: made and fingerprinted by ssh-keygen when installed, else made by
    cryptography and fingerprinted independently of stackcore's code."""
    found = []
    if shutil.which("ssh-keygen"):
        for label, args in (("ed25519", ["-t", "ed25519"]), ("ecdsa-384", ["-t", "ecdsa", "-b",
                                                                           "384"]),
                            ("rsa-3072", ["-t", "rsa", "-b", "3072"])):
            path = tmp_path / label
            subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", f"{label}@test", *args, "-f",
                            str(path)], check=True, capture_output=True, timeout=120)
            line = (tmp_path / f"{label}.pub").read_text().strip()
            printed = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(path)],
                                     check=True, capture_output=True, text=True,
                                     timeout=60).stdout.split()[1]
            assert printed.startswith("MD5:"), printed
            found.append((label, line, printed.removeprefix("MD5:")))
        return found
    for label, key in (("ed25519", ed25519.Ed25519PrivateKey.generate()),
                       ("ecdsa-384", ec.generate_private_key(ec.SECP384R1())),
                       ("rsa-3072", rsa.generate_private_key(65537, 3072))):
        line = _openssh(key.public_key()) + f" {label}@test"
        found.append((label, line, _independent_md5(line)))
    return found


def test_fingerprints_are_ssh_keygens_md5(tmp_path: Path) -> None:
    for label, line, expected in _generated_keys(tmp_path):
        key, printed = parse_public_key("public_key", line)
        assert (key, printed) == (line, expected), f"{label}: {printed} != {expected}"


def test_accepted_and_refused_key_types() -> None:
    for curve in (ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()):
        line = _openssh(ec.generate_private_key(curve).public_key())
        assert parse_public_key("public_key", line)[1] == _independent_md5(line), curve.name
    rsa_2048 = _openssh(rsa.generate_private_key(65537, 2048).public_key())
    assert parse_public_key("public_key", rsa_2048 + " me@host")[0] == rsa_2048 + " me@host"
    refused = {
        "DSA": (_openssh(dsa.generate_private_key(1024).public_key()), "DSA"),
        "RSA-1024": (_openssh(rsa.generate_private_key(65537, 1024).public_key()),
                     "1024-bit RSA key; at least 2048"),
        "garbage": ("ssh-ed25519 AAAAnotakey", "not an OpenSSH public key"),
        "no type": ("AAAAC3NzaC1lZDI1NTE5AAAAIA", "not an OpenSSH public key"),
        "two lines": ("ssh-ed25519 AAAA\nssh-ed25519 AAAA", "one OpenSSH public key line"),
        "a private key": ("-----BEGIN OPENSSH PRIVATE KEY-----", "not an OpenSSH public key"),
    }
    for label, (line, words) in refused.items():
        with pytest.raises(exception.Invalid) as caught:
            parse_public_key("public_key", line)
        assert caught.value.kwargs["field"] == "public_key" and words in str(caught.value), \
            f"{label}: {caught.value}"


def test_fingerprint_format() -> None:
    assert fingerprint(b"") == "d4:1d:8c:d9:8f:00:b2:04:e9:80:09:98:ec:f8:42:7e"


def test_keypairs_belong_to_users(make_cloud) -> None:
    cloud = make_cloud(fake_hosts=0)
    alice, bob, root = (cloud.as_project(c) for c in (ALICE, BOB, ROOT))
    line = _openssh(ed25519.Ed25519PrivateKey.generate().public_key()) + " alice@laptop"
    made = alice.compute.create_keypair("my key_1.@x", line)
    assert (made.name, made.user_id, made.project_id, made.type, made.public_key,
            made.fingerprint) == ("my key_1.@x", "alice", "project-a", "ssh", line,
                                  _independent_md5(line)), made
    assert alice.compute.get_keypair("my key_1.@x") == made
    assert [k.name for k in alice.compute.list_keypairs()] == ["my key_1.@x"]
    # Another user of the same project does not see it, and may use the same name.
    assert bob.compute.list_keypairs() == []
    with pytest.raises(exception.NotFound):
        bob.compute.get_keypair("my key_1.@x")
    bob.compute.create_keypair("my key_1.@x", line)
    with pytest.raises(exception.Conflict, match="alice already has a keypair named"):
        alice.compute.create_keypair("my key_1.@x", line)
    # Naming another user is an admin's rule.
    with pytest.raises(exception.Forbidden, match="compute:keypair:other_user"):
        bob.compute.list_keypairs(user_id="alice")
    assert [k.user_id for k in root.compute.list_keypairs(user_id="alice")] == ["alice"]
    root.compute.create_keypair("for-carol", line, user_id="carol")
    assert root.compute.get_keypair("for-carol", user_id="carol").user_id == "carol"
    assert root.compute.list_keypairs() == []  # root's own: none
    # Delete is idempotent.
    alice.compute.delete_keypair("my key_1.@x")
    alice.compute.delete_keypair("my key_1.@x")
    assert alice.compute.list_keypairs() == []
    assert [k.user_id for k in bob.compute.list_keypairs()] == ["bob"]


def test_bad_names_and_keys_are_one_error_and_nothing_stored(make_cloud) -> None:
    cloud = make_cloud(fake_hosts=0)
    line = _openssh(ed25519.Ed25519PrivateKey.generate().public_key())
    bad = [({"name": "a/b", "public_key": line}, "name"),
           ({"name": "", "public_key": line}, "name"),
           ({"name": "x" * 256, "public_key": line}, "name"),
           ({"name": "   ", "public_key": line}, "name"),
           ({"name": "é", "public_key": line}, "name"),
           ({"name": "k", "public_key": "ssh-rsa AAAAB3NzaC1yc2E="}, "public_key"),
           ({"name": "k", "public_key": _openssh(
               dsa.generate_private_key(1024).public_key())}, "public_key")]
    for kwargs, field in bad:
        with pytest.raises(exception.Invalid) as caught:
            cloud.compute.create_keypair(**kwargs)
        assert caught.value.kwargs["field"] == field, f"{kwargs}: {caught.value}"
    with cloud.db.read() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(models.KeyPair)
                               ).scalar_one() == 0
    assert cloud.compute.create_keypair("x" * 255, line).name == "x" * 255


def test_key_pairs_quota_is_per_project(make_cloud) -> None:
    cloud = make_cloud(fake_hosts=0, overrides={"quota": {"key_pairs": 2}})
    alice, bob = cloud.as_project(ALICE), cloud.as_project(BOB)
    line = _openssh(ed25519.Ed25519PrivateKey.generate().public_key())
    alice.compute.create_keypair("one", line)
    bob.compute.create_keypair("two", line)
    with pytest.raises(exception.OverQuota, match="key_pairs"):
        alice.compute.create_keypair("three", line)
    assert [k.name for k in alice.compute.list_keypairs()] == ["one"]
    bob.compute.delete_keypair("two")
    alice.compute.create_keypair("three", line)


def test_server_keeps_a_copy_of_its_key_and_its_user_data(make_cloud, image_file) -> None:
    cloud = make_cloud(fake_hosts=1)
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file, "raw", visibility="public")
    alice = cloud.as_project(ALICE)
    line = _openssh(ec.generate_private_key(ec.SECP256R1()).public_key()) + " alice"
    alice.compute.create_keypair("k", line)
    script = b"#!/bin/sh\necho hello\n" * 10
    encoded = base64.encodebytes(script).decode()  # MIME lines of 76 characters
    assert "\n" in encoded.strip()
    server = alice.compute.create_server("s", "small", "img", key_name="k", user_data=encoded)
    assert (server.status, server.key_name) == ("ACTIVE", "k"), server
    assert not hasattr(server, "user_data") and not hasattr(server, "key_data")
    alice.compute.delete_keypair("k")
    with cloud.db.read() as session:
        row = session.get(models.Instance, server.id)
        assert row is not None
        assert (row.key_name, row.key_data) == ("k", line)
        assert base64.b64decode(row.user_data or "") == script
    # The big columns are deferred: a list query does not load them.
    with cloud.db.read() as session:
        listed = session.execute(sa.select(models.Instance)).scalars().one()
        assert {"key_data", "user_data"} & set(sa.inspect(listed).unloaded) == \
            {"key_data", "user_data"}
    assert alice.compute.get_server(server.id).key_name == "k"
    assert [s.key_name for s in alice.compute.list_servers()] == ["k"]


def test_bad_key_name_or_user_data_makes_no_server(make_cloud, image_file) -> None:
    cloud = make_cloud(fake_hosts=1)
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file, "raw")
    line = _openssh(ed25519.Ed25519PrivateKey.generate().public_key())
    cloud.as_project(BOB).compute.create_keypair("bobs", line)
    bad = [({"key_name": "nope"}, "key_name", "no keypair named 'nope'"),
           ({"key_name": "bobs"}, "key_name", "no keypair named 'bobs'"),  # another user's
           ({"key_name": "a/b"}, "key_name", "letters, digits"),
           ({"user_data": "not base64!"}, "user_data", "not valid base64"),
           ({"user_data": "YWJj="}, "user_data", "not valid base64"),
           ({"user_data": "QUFB" * 16384}, "user_data", "at most 65535")]
    for kwargs, field, words in bad:
        with pytest.raises(exception.Invalid) as caught:
            cloud.compute.create_server("s", "small", "img", **kwargs)
        assert caught.value.kwargs["field"] == field and words in str(caught.value), \
            f"{kwargs}: {caught.value}"
    assert cloud.compute.list_servers(include_deleted=True) == []
