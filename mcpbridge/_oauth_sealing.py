"""Tokens sealed at rest: AES-256-GCM under a key ring the deployment provides.

A `KeyRing` holds the deployment's keys by id; the first seals, every one opens,
so a key is rotated by putting a new one first and dropping the old one once
nothing sealed with it is left (each entry is sealed again on its next write).
The key id is kept beside the ciphertext. The associated data binds each entry
to its user, authorization server, resource and server URL: an entry copied
under another user or server fails to open.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mcpbridge.errors import ConfigError

__all__ = ["KEYS_ENV", "KeyRing", "Sealed", "binding"]

KEYS_ENV: Final = "MCPBRIDGE_OAUTH_KEYS"
"""The environment variable `KeyRing.from_env` reads: ``id:key[,id:key...]``, the first sealing."""

_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_BINDING: Final = "mcpbridge.oauth.tokens/1"


@dataclass(frozen=True, slots=True)
class Sealed:
    """An encrypted value and what is needed to open it (none of it secret).

    Attributes:
        key_id: The id of the key that sealed it.
        nonce: The AES-GCM nonce (base64url).
        ciphertext: The ciphertext with its tag (base64url).
    """

    key_id: str
    nonce: str
    ciphertext: str


def binding(user: str, issuer: str, resource: str, server_url: str) -> bytes:
    """The associated data of a user's tokens: sealed for one user, issuer, resource and server URL."""
    return json.dumps([_BINDING, user, issuer, resource, server_url], separators=(",", ":")).encode()


class KeyRing:
    """The deployment's keys for tokens at rest (AES-256-GCM), by id; the first one seals.

    Keys are 32 random bytes, given base64 (standard or URL-safe). Reprs show the ids only.

    Args:
        keys: Key id -> key, the sealing key first.

    Raises:
        ConfigError: No key, a key id with ``:`` or ``,``, or a key that is not 32 bytes.

    Example:
        ```python
        # MCPBRIDGE_OAUTH_KEYS="2026-12:<new key>,2026-06:<old key>"
        keys = KeyRing.from_env()
        print(KeyRing.generate("2027-01"))  # a new entry to put first
        ```
    """

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ConfigError("the OAuth key ring needs at least one key", field="keys")
        for key_id, key in keys.items():
            if not key_id or any(c in key_id for c in ":,") or key_id != key_id.strip():
                raise ConfigError(
                    f"OAuth key id {key_id!r} must be non-empty, without ':' or ','", field="keys"
                )
            if len(key) != _KEY_BYTES:
                raise ConfigError(
                    f"OAuth key {key_id!r} must be {_KEY_BYTES} bytes (AES-256), not {len(key)}", field="keys"
                )
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = next(iter(keys))

    def __repr__(self) -> str:
        return f"KeyRing(ids={list(self._keys)!r}, current={self.current!r})"

    @property
    def ids(self) -> list[str]:
        """The key ids, the sealing one first."""
        return list(self._keys)

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """The ring written as ``id:base64key[,id:base64key...]``, the first sealing.

        Raises:
            ConfigError: The text is not of that form (the message never holds a key).
        """
        keys: dict[str, bytes] = {}
        for entry in (part.strip() for part in text.split(",")):
            key_id, colon, encoded = entry.partition(":")
            if not colon or key_id in keys:
                raise ConfigError(
                    "OAuth keys must be written 'id:base64key', separated by commas, each id once",
                    field="keys",
                )
            try:
                urlsafe = encoded.strip().replace("+", "-").replace("/", "_")
                keys[key_id] = base64.urlsafe_b64decode(_padded(urlsafe))
            except (binascii.Error, ValueError):
                raise ConfigError(f"OAuth key {key_id!r} is not base64", field="keys") from None
        return cls(keys)

    @classmethod
    def from_env(cls, name: str = KEYS_ENV) -> KeyRing:
        """The ring in the environment variable ``name`` (see `parse`).

        Raises:
            ConfigError: The variable is unset or malformed.
        """
        text = os.environ.get(name, "").strip()
        if not text:
            raise ConfigError(
                f"set {name} to the key ring for OAuth tokens at rest ('id:base64key', 32 random "
                "bytes; KeyRing.generate('k1') makes one)",
                field=name,
            )
        return cls.parse(text)

    @staticmethod
    def generate(key_id: str) -> str:
        """A new ring entry ``id:base64key`` with a fresh random key."""
        return f"{key_id}:{base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()}"

    def seal(self, plaintext: bytes, associated: bytes) -> Sealed:
        """Encrypt ``plaintext`` with the sealing key, bound to ``associated``."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        ciphertext = self._keys[self.current].encrypt(nonce, plaintext, associated)
        return Sealed(key_id=self.current, nonce=_b64(nonce), ciphertext=_b64(ciphertext))

    def open(self, sealed: Sealed, associated: bytes) -> bytes | None:
        """The plaintext of ``sealed``; ``None`` when its key is unknown, or it was altered or moved."""
        key = self._keys.get(sealed.key_id)
        if key is None:
            return None
        try:
            return key.decrypt(
                base64.urlsafe_b64decode(_padded(sealed.nonce)),
                base64.urlsafe_b64decode(_padded(sealed.ciphertext)),
                associated,
            )
        except (InvalidTag, binascii.Error, ValueError):
            return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)
