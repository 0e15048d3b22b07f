from __future__ import annotations

import base64

import pytest

from mcpbridge import ConfigError
from mcpbridge._oauth_sealing import Sealed, binding
from mcpbridge.oauth import KEYS_ENV, KeyRing

ALICE = binding(
    "alice", "https://auth.example.com", "https://mcp.example.com/mcp", "https://mcp.example.com/mcp"
)
BOB = binding("bob", "https://auth.example.com", "https://mcp.example.com/mcp", "https://mcp.example.com/mcp")


def test_sealed_with_the_first_key_opened_only_under_its_own_binding() -> None:
    keys = KeyRing.parse(f"{KeyRing.generate('new')},{KeyRing.generate('old')}")
    sealed = keys.seal(b"secret tokens", ALICE)
    assert sealed.key_id == "new" and b"secret" not in sealed.ciphertext.encode()
    assert keys.open(sealed, ALICE) == b"secret tokens"
    assert keys.open(sealed, BOB) is None  # moved to another user: refused
    other_issuer = binding("alice", "https://evil.example.com", "https://mcp.example.com/mcp", "u")
    assert keys.open(sealed, other_issuer) is None
    flipped = sealed.ciphertext[:-2] + ("A" if sealed.ciphertext[-2] != "A" else "B") + sealed.ciphertext[-1]
    assert keys.open(Sealed(sealed.key_id, sealed.nonce, flipped), ALICE) is None
    assert keys.seal(b"secret tokens", ALICE).nonce != sealed.nonce


def test_rotation_old_keys_open_the_newest_seals() -> None:
    old_entry = KeyRing.generate("2026-06")
    old = KeyRing.parse(old_entry)
    sealed = old.seal(b"t", ALICE)
    rotated = KeyRing.parse(f"{KeyRing.generate('2026-12')},{old_entry}")
    assert rotated.ids == ["2026-12", "2026-06"]
    assert rotated.open(sealed, ALICE) == b"t"
    assert rotated.seal(b"t", ALICE).key_id == "2026-12"
    retired = KeyRing.parse(KeyRing.generate("2026-12"))
    assert retired.open(sealed, ALICE) is None  # the old key dropped: the entry no longer opens


def test_keys_stay_out_of_reprs_and_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = KeyRing.generate("k1")
    key = entry.split(":", 1)[1]
    assert key not in repr(KeyRing.parse(entry)) and "k1" in repr(KeyRing.parse(entry))
    monkeypatch.setenv(KEYS_ENV, entry)
    assert KeyRing.from_env().ids == ["k1"]
    short = base64.b64encode(b"x" * 16).decode()
    for bad in (f"k1:{short}", "k1", "", f"k1:{key},k1:{key}", "k1:%%%"):
        with pytest.raises(ConfigError) as caught:
            KeyRing.parse(bad) if bad else KeyRing({})
        assert key not in str(caught.value)
    monkeypatch.delenv(KEYS_ENV)
    with pytest.raises(ConfigError, match=KEYS_ENV):
        KeyRing.from_env()


def test_standard_base64_keys_are_accepted() -> None:
    raw = bytes(range(32))
    keys = KeyRing.parse(f"a:{base64.b64encode(raw).decode()}")
    assert keys.open(keys.seal(b"x", ALICE), ALICE) == b"x"
