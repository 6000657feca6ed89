"""Where `finsent api` may listen: loopback always; beyond it only with a write token, or when told."""

from __future__ import annotations

import pytest

from finsent.config import Params
from finsent.paths import is_loopback
from finsent.service.server import BindRefused, check_bind


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "example.org"))


def test_a_public_bind_needs_a_token_or_an_explicit_flag(monkeypatch):
    p = Params()
    monkeypatch.delenv(p.service.token_env, raising=False)
    check_bind(p, "127.0.0.1", allow_open=False)
    with pytest.raises(BindRefused, match=f"set {p.service.token_env}"):
        check_bind(p, "0.0.0.0", allow_open=False)
    check_bind(p, "0.0.0.0", allow_open=True)
    monkeypatch.setenv(p.service.token_env, "t")
    check_bind(p, "0.0.0.0", allow_open=False)
