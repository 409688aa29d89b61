"""API keys (hashed at rest), browser sessions, and who owns a request."""

from __future__ import annotations

import json

import pytest

from gateway.errors import GatewayError
from gateway.keys import KeyRing, hash_key, main, new_key
from gateway.owners import Identifier, Sessions, session_cookie

PLANS = {"free": 10, "pro": 100}


def write_keys(tmp_path, entries) -> str:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(entries))
    return str(path)


def test_keys_are_stored_and_looked_up_by_hash_only(tmp_path) -> None:
    key = new_key()
    path = write_keys(tmp_path, [{"id": "alice", "plan": "pro", "sha256": hash_key(key)}])
    ring = KeyRing.from_file(path, PLANS)
    assert ring.required
    assert ring.lookup(key).id == "alice" and ring.lookup(key).plan == "pro"
    assert ring.lookup(key + "x") is None
    assert key not in (tmp_path / "keys.json").read_text()
    assert not KeyRing.from_file("", PLANS).required


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ({"id": "a"}, "JSON list"),
        ([{"id": "a", "plan": "free"}], "needs id, plan and sha256"),
        ([{"id": "a", "plan": "free", "sha256": "abc"}], "64 hex digits"),
        ([{"id": "a", "plan": "gold", "sha256": "0" * 64}], "unknown plan 'gold'"),
    ],
)
def test_a_bad_keys_file_says_what_is_wrong(tmp_path, entries, reason) -> None:
    with pytest.raises(ValueError, match=reason):
        KeyRing.from_file(write_keys(tmp_path, entries), PLANS)


def test_the_key_command_prints_a_key_and_its_entry(capsys) -> None:
    assert main(["new", "--id", "bob", "--plan", "pro"]) == 0
    first, second = capsys.readouterr().out.strip().splitlines()
    key = first.rsplit(" ", 1)[-1]
    assert json.loads(second) == {"id": "bob", "plan": "pro", "sha256": hash_key(key)}


async def test_local_mode_gives_each_browser_its_own_session(redis_client) -> None:
    identifier = Identifier(KeyRing(), Sessions(redis_client, 3600), session_plan="")
    first = await identifier.identify("", "", "10.0.0.1")
    assert first.new_session and first.owner.startswith("session:") and first.client_id == "ip:10.0.0.1"
    again = await identifier.identify("", first.new_session, "10.0.0.1")
    assert again.owner == first.owner and not again.new_session
    other = await identifier.identify("", "", "10.0.0.1")
    assert other.owner != first.owner
    forged = await identifier.identify("", "not a token", "10.0.0.1")
    assert forged.new_session, "a malformed cookie is replaced, not trusted"
    assert first.new_session not in first.owner, "job records hold a digest of the token, never the token"


async def test_keyed_mode_needs_a_key_or_a_session_bound_to_one(tmp_path, redis_client) -> None:
    key = new_key()
    ring = KeyRing.from_file(write_keys(tmp_path, [{"id": "alice", "plan": "free", "sha256": hash_key(key)}]), PLANS)
    sessions = Sessions(redis_client, 3600)
    identifier = Identifier(ring, sessions, session_plan="")
    caller = await identifier.identify(key, "", "10.0.0.1")
    assert (caller.owner, caller.client_id, caller.plan) == ("key:alice", "key:alice", "free")
    with pytest.raises(GatewayError) as missing:
        await identifier.identify("", "", "10.0.0.1")
    assert missing.value.status == 401 and "API key" in missing.value.detail
    with pytest.raises(GatewayError) as wrong:
        await identifier.identify("pl_wrong", "", "10.0.0.1")
    assert wrong.value.status == 401
    token = await sessions.bind(ring.lookup(key))
    assert (await identifier.identify("", token, "10.0.0.1")).owner == "key:alice"
    await sessions.end(token)
    with pytest.raises(GatewayError):
        await identifier.identify("", token, "10.0.0.1")


def test_the_session_cookie_is_http_only_and_same_site() -> None:
    cookie = session_cookie("tok", 60, secure=True)
    assert cookie.startswith("poster_session=tok;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert cookie.endswith("; Secure") and "Secure" not in session_cookie("tok", 60, secure=False)
