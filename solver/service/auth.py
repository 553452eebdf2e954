"""API keys: generated at random, shown once, stored only as a hash, compared in constant time.

A key reads ``bsk_<key id>_<secret>``: the key id (16 hex digits, public, the row to look up)
and a 256-bit random secret (URL-safe base64). Only ``sha256(secret)`` is stored; because the
secret is uniformly random and long, a plain SHA-256 is as strong as a slow password hash here and
keeps verification cheap. Verification compares digests with :func:`hmac.compare_digest`.

Examples
--------
>>> key = new_key()
>>> parsed = parse_key(key.token)
>>> parsed is not None and parsed[0] == key.key_id and matches(parsed[1], key.secret_hash)
True
>>> parse_key("Bearer nonsense") is None
True
>>> check_tenant_name("acme-eu.1")
'acme-eu.1'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "bsk"
_KEY_RE = re.compile(r"^bsk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: digest compared against when the key id is unknown, so that both paths do the same work
_NO_SUCH_KEY = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: ``token`` is given to the user once; the rest is stored."""

    key_id: str
    token: str
    secret_hash: str


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of the secret part of a key."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_key() -> NewKey:
    """A new random key (16-hex-digit id, 256-bit secret)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id=key_id, token=f"{PREFIX}_{key_id}_{secret}", secret_hash=hash_secret(secret))


def parse_key(token: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed key, else None."""
    m = _KEY_RE.match(token.strip())
    return (m.group(1), m.group(2)) if m else None


def matches(secret: str, stored_hash: str | None) -> bool:
    """Whether ``secret`` hashes to ``stored_hash``, in time independent of where they differ.

    With ``stored_hash`` None (unknown or revoked key) the same work is done and False returned.
    """
    ok = hmac.compare_digest(hash_secret(secret), stored_hash or _NO_SUCH_KEY)
    return ok and stored_hash is not None


def check_tenant_name(name: str) -> str:
    """The tenant name if it is 1-100 characters of letters, digits, ``.``, ``_``, ``-``
    (starting with a letter or digit); ValueError otherwise."""
    if not _TENANT_RE.match(name):
        raise ValueError(f"tenant: expected 1-100 letters, digits, '.', '_' or '-' "
                         f"(starting with a letter or digit), got {name!r}")
    return name
