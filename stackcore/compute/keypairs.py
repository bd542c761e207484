"""Keypairs (``cloud.compute.create_keypair`` ...) and the checks of a server's key and user
data.

As Nova since microversion 2.92, a keypair is *imported*: the caller gives an OpenSSH public
key and no private key ever passes through a service. A keypair belongs to a user (unique per
user and name, the user's in every project); an admin names another user with ``user_id=``
(rule ``compute:keypair:other_user``). The project it is created in counts it in its
``key_pairs`` quota.

Keys are parsed by ``cryptography``'s OpenSSH parser, not matched by a regex: what is accepted
is a key OpenSSH itself can use, of a type and size still considered safe - ed25519, ECDSA on
P-256/384/521, RSA of at least 2048 bits. DSA (OpenSSH dropped it) and short RSA are refused.
The fingerprint is Nova's: MD5 of the key blob in colon hex, what ``ssh-keygen -l -E md5``
prints.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib

import sqlalchemy as sa

from stackcore import exception, schemas
from stackcore import schemas as s
from stackcore.compute import models
from stackcore.compute import schemas as cs
from stackcore.db import api as db_api
from stackcore.project import policy
from stackcore.project.scope import ScopedAPI

#: the smallest RSA modulus accepted (NIST SP 800-131A; OpenSSH refuses less than 1024)
MIN_RSA_BITS = 2048
#: ECDSA curves OpenSSH knows
EC_CURVES = {"secp256r1": "ecdsa-sha2-nistp256", "secp384r1": "ecdsa-sha2-nistp384",
             "secp521r1": "ecdsa-sha2-nistp521"}


@dataclasses.dataclass(frozen=True)
class KeyPair:
    name: str
    user_id: str
    fingerprint: str
    public_key: str
    type: str  # "ssh"
    created_at: datetime.datetime
    project_id: str = "admin"


def fingerprint(blob: bytes) -> str:
    """Nova's fingerprint of an SSH key blob: MD5 in colon hex (``ssh-keygen -l -E md5``
    without the ``MD5:`` prefix). MD5 names the key; it protects nothing."""
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def parse_public_key(field: str, text: str) -> tuple[str, str]:
    """``(key, fingerprint)`` of one OpenSSH public key line (``type base64 [comment]``);
    :class:`~stackcore.exception.Invalid` naming ``field`` for anything else, a refused key
    type or a short RSA key. ``key`` is the line as given, stripped."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

    line = text.strip()
    if not line or "\n" in line or "\r" in line:
        raise exception.Invalid(field, "must be one OpenSSH public key line (type, base64 "
                                "key, optional comment)")
    parts = line.split()
    if parts[0] == "ssh-dss":
        raise exception.Invalid(field, "is a DSA key, which is refused (OpenSSH removed DSA): "
                                "use ed25519, ECDSA or RSA of at least 2048 bits")
    try:
        key = serialization.load_ssh_public_key(line.encode("ascii"))
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError) as err:
        raise exception.Invalid(field, f"is not an OpenSSH public key ({err})") from None
    if isinstance(key, dsa.DSAPublicKey):
        raise exception.Invalid(field, "is a DSA key, which is refused (OpenSSH removed DSA)")
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise exception.Invalid(field, f"is a {key.key_size}-bit RSA key; at least "
                                    f"{MIN_RSA_BITS} bits are required")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise exception.Invalid(field, f"is an ECDSA key on curve {key.curve.name}; "
                                    f"accepted: NIST P-256, P-384, P-521")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise exception.Invalid(field, f"is a {type(key).__name__}, not an ed25519, ECDSA or "
                                "RSA key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, IndexError):  # the parser accepted it: cannot happen
        raise exception.Invalid(field, "has no valid base64 key") from None
    return line, fingerprint(blob)


def check_user_data(field: str, user_data: str) -> str:
    """User data as stored: the base64 text without MIME line breaks (the schema checked it
    is base64 and at most 65535 characters)."""
    compact = user_data.replace("\r", "").replace("\n", "")
    try:
        base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise exception.Invalid(field, "is not valid base64") from None
    return compact


def _view(row: models.KeyPair) -> KeyPair:
    return KeyPair(row.name, row.user_id, row.fingerprint, row.public_key, row.type,
                   row.created_at, row.project_id)


class KeyPairsAPI(ScopedAPI):
    """Keypairs (mixed into :class:`stackcore.compute.api.ComputeAPI`, which provides
    ``db``)."""

    db: db_api.Database

    def _keypair_owner(self, user_id: str | None) -> str:
        """The user whose keypairs a call is about: the caller's, or another one's for an
        admin (rule ``compute:keypair:other_user``)."""
        if user_id is None or user_id == self.user_id:
            return self.user_id
        self._authorize("compute:keypair:other_user")
        return user_id

    @schemas.accepts(name=cs.KEYPAIR_NAME, public_key=cs.PUBLIC_KEY,
                     user_id=s.optional(cs.USER_ID))
    @policy.authorize("compute:keypair:create")
    def create_keypair(self, name: str, public_key: str,
                       user_id: str | None = None) -> KeyPair:
        """Import an OpenSSH public key as keypair ``name`` of the caller (of ``user_id``: an
        admin rule). Conflict if the user has a keypair of that name; OverQuota beyond the
        project's ``key_pairs``."""
        owner = self._keypair_owner(user_id)
        key, print_ = parse_public_key("public_key", public_key)
        row = models.KeyPair(name=name, user_id=owner, project_id=self.project_id,
                             fingerprint=print_, public_key=key, type="ssh")
        try:
            with self.db.transaction() as session:
                self.quotas.check(session, self.project_id, {"key_pairs": 1})
                session.add(row)
        except sa.exc.IntegrityError:
            raise exception.Conflict(f"user {owner} already has a keypair named "
                                     f"{name!r}") from None
        return _view(row)

    @schemas.accepts(name=cs.KEYPAIR_NAME, user_id=s.optional(cs.USER_ID))
    @policy.authorize("compute:keypair:get")
    def get_keypair(self, name: str, user_id: str | None = None) -> KeyPair:
        owner = self._keypair_owner(user_id)
        with self.db.read() as session:
            row = session.execute(sa.select(models.KeyPair).where(
                models.KeyPair.user_id == owner, models.KeyPair.name == name)
            ).scalar_one_or_none()
            if row is None:
                raise exception.NotFound("keypair", name)
            return _view(row)

    @schemas.accepts(user_id=s.optional(cs.USER_ID))
    @policy.authorize("compute:keypair:list")
    def list_keypairs(self, user_id: str | None = None) -> list[KeyPair]:
        """The user's keypairs, by name."""
        owner = self._keypair_owner(user_id)
        with self.db.read() as session:
            rows = session.execute(sa.select(models.KeyPair).where(
                models.KeyPair.user_id == owner).order_by(models.KeyPair.name)).scalars()
            return [_view(r) for r in rows]

    @schemas.accepts(name=cs.KEYPAIR_NAME, user_id=s.optional(cs.USER_ID))
    @policy.authorize("compute:keypair:delete")
    def delete_keypair(self, name: str, user_id: str | None = None) -> None:
        """Delete a keypair; one that does not exist (any more) is not an error. Servers
        booted with it keep their copy of the key."""
        owner = self._keypair_owner(user_id)
        with self.db.transaction() as session:
            session.execute(sa.delete(models.KeyPair).where(
                models.KeyPair.user_id == owner, models.KeyPair.name == name))

    def _server_key(self, key_name: str) -> str:
        """The public key of the caller's keypair ``key_name`` for a new server; Invalid
        naming ``key_name`` if the caller has none of that name."""
        with self.db.read() as session:
            key = session.execute(sa.select(models.KeyPair.public_key).where(
                models.KeyPair.user_id == self.user_id, models.KeyPair.name == key_name)
            ).scalar_one_or_none()
        if key is None:
            raise exception.Invalid("key_name", f"user {self.user_id} has no keypair named "
                                    f"{key_name!r}", key_name)
        return str(key)
