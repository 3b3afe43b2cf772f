"""Single sign-on with OpenID Connect, end to end: real Chromium, a real chatd, and a real OpenID provider
(oidc-provider on node, tests/oidc/provider.mjs) that the test starts.

The bad-token cases use the same provider: a middleware on its token endpoint spoils the ID token it just issued
(a claim changed after signing; re-signed with the provider's own key for another audience, already expired, or
with another nonce; unsigned; or signed with HS256 keyed by the client secret), so chatd meets each one at the end
of a real sign-in in the browser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chatpage import ChatPage
from oidc_provider import OidcProvider

from chatd.deploy.local import free_port
from harness import ChatdProcess, run_cli

pytestmark = pytest.mark.browser

CLIENT_ID, SECRET = "chatd-tests", "a-client-secret-for-tests"
CALLBACK = "/api/auth/oidc/callback"


class Sso:
    """The provider and two chatd servers using it: ``open`` (password sign-in on, any domain) and ``strict``
    (allowed_domains = example.com, password sign-in off, the secret from a file)."""

    def __init__(self, provider: OidcProvider, open_: ChatdProcess, strict: ChatdProcess) -> None:
        self.provider, self.open, self.strict = provider, open_, strict


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sso]:
    ports = free_port(), free_port()
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    work = tmp_path_factory.mktemp("sso")
    client = {
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "redirect_uris": [base + "/api/auth/oidc/callback" for base in bases],
    }
    provider = OidcProvider(work, [client]).start()
    secret_file = work / "client-secret"
    secret_file.write_text(SECRET + "\n")
    servers: list[ChatdProcess] = []
    try:
        for i, (port, base) in enumerate(zip(ports, bases, strict=True)):
            oidc: dict[str, Any] = {"issuer": provider.issuer, "client_id": CLIENT_ID, "redirect_base": base}
            env = {}
            if i == 0:
                env["CHATD_AUTH_OIDC_CLIENT_SECRET"] = SECRET
            else:
                oidc |= {"client_secret_file": str(secret_file), "allowed_domains": ["example.com"]}
                oidc["password_sign_in"] = False
            settings = {"server": {"port": port}, "auth": {"mode": "token", "oidc": oidc}}
            servers.append(ChatdProcess(work / f"chatd{i}", settings, env).start())
        yield Sso(provider, servers[0], servers[1])
    finally:
        for server in servers:
            server.stop()
        provider.stop()


def sso_sign_in(person: ChatPage, server: ChatdProcess, login: str) -> None:
    """From the chatd page through the provider's login and consent forms, back to chatd."""
    page = person.page
    person.goto(server)
    page.click("#sso-button")
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password: the development login form checks none")
    page.click("button[type=submit]")
    page.wait_for_selector("button[type=submit]:has-text('Continue')")  # consent
    page.click("button[type=submit]:has-text('Continue')")


def signed_in(person: ChatPage) -> dict[str, Any]:
    """Wait for the chat screen; the user chatd says this page's token is (GET /api/me)."""
    person.page.wait_for_selector('body[data-ready="true"]')
    person.wait_connected()
    session = person.page.evaluate("JSON.parse(sessionStorage.getItem('chatd.session'))")
    assert session["mode"] == "token" and session["token"].startswith("chatd_")
    base = person.page.url.split("/#")[0].rstrip("/")
    me = httpx.get(base + "/api/me", headers={"Authorization": f"Bearer {session['token']}"}, timeout=10)
    assert me.status_code == 200, me.text
    return dict(me.json())


def refused(person: ChatPage) -> str:
    """Back on the sign-in form after a failed sign-in: the words it shows."""
    page = person.page
    page.wait_for_selector("#signin-error:has-text('Single sign-on failed')")
    assert page.get_attribute("body", "data-ready") is None
    return str(page.inner_text("#signin-error"))


def test_a_first_sign_in_makes_an_account_by_subject_and_later_ones_find_it_whatever_the_name(
    sso: Sso, people: Callable[..., ChatPage]
) -> None:
    provider, server = sso.provider, sso.open
    provider.set_account("sub-ada-1", preferred_username="ada", email="ada@example.com")
    ada = people("ada").goto(server)
    page = ada.page
    page.wait_for_selector("#signin-form")
    assert page.inner_text("#sso-button") == "Sign in with SSO"
    assert page.is_visible("#signin-password") and page.is_visible("#login-button")  # passwords still work here
    ada.screenshot("sso-signin.png")
    sso_sign_in(ada, server, "sub-ada-1")
    me = signed_in(ada)
    assert me["name"] == "ada" and page.inner_text("#me") == "ada"
    # chatd's normal session: the WebSocket works, a message is stored and shown.
    page.goto(server.http + "/#sso-room")
    ada.wait_live("sso-room")
    ada.send("signed in with SSO")
    ada.wait_message("signed in with SSO")

    # Another subject with the same preferred name and e-mail is another person: a new id, the next free name.
    provider.set_account("sub-ada-2", preferred_username="ada", email="ada@example.com")
    twin = people("twin")
    sso_sign_in(twin, server, "sub-ada-2")
    other = signed_in(twin)
    assert other["id"] != me["id"] and other["name"] == "ada-2"

    # A password account's name is never a way in: the SSO user named like it gets its own account.
    r = httpx.post(server.http + "/api/auth/register", json={"username": "bea", "password": "correct horse"})
    assert r.status_code == 201, r.text
    bea_id = r.json()["user"]["id"]
    provider.set_account("sub-bea", preferred_username="bea", email="bea@example.com")
    bea = people("bea-sso")
    sso_sign_in(bea, server, "sub-bea")
    sso_bea = signed_in(bea)
    assert sso_bea["id"] != bea_id and sso_bea["name"] == "bea-2"

    # Later sign-ins find the account by (issuer, sub), though the provider now gives another name and e-mail.
    provider.set_account("sub-ada-1", preferred_username="adaline", email="adaline@example.com")
    again = people("ada-again")
    sso_sign_in(again, server, "sub-ada-1")
    assert signed_in(again) == me


def test_a_replayed_callback_is_refused_even_with_its_flow_cookie(sso: Sso, people: Callable[..., ChatPage]) -> None:
    """The callback works once on the deployment: its state is spent in the store (Store.claim_once) on first use.
    Replayed in another browser it has no flow cookie; replayed with the very cookie it came with, it is spent;
    with another sign-in's cookie, its state does not match."""
    provider, server = sso.provider, sso.open
    provider.set_account("sub-cy", preferred_username="cy")
    cy = people("cy")
    seen: dict[str, str] = {}

    def watch(response: Any) -> None:
        if "/api/auth/oidc/start" in response.url:
            cookie = response.header_value("set-cookie") or ""
            seen["flow"] = cookie.split(";")[0].split("=", 1)[1].strip('"')
        if "/api/auth/oidc/callback" in response.url:
            seen["callback"] = response.url

    cy.page.on("response", watch)
    sso_sign_in(cy, server, "sub-cy")
    assert signed_in(cy)["name"] == "cy"
    callback = seen["callback"]
    assert "code=" in callback and "state=" in callback

    thief = people("thief")
    thief.page.goto(callback)
    assert "not started in this browser" in refused(thief)

    cy.context.add_cookies([{"name": "chatd_sso_flow", "value": seen["flow"], "url": server.http + "/api/auth/oidc"}])
    cy.page.goto(callback)
    assert "already used" in refused(cy)

    start = httpx.get(server.http + "/api/auth/oidc/start", follow_redirects=False)
    assert start.status_code == 302 and "code_challenge_method=S256" in start.headers["location"]
    replay = httpx.get(callback, cookies={"chatd_sso_flow": start.cookies["chatd_sso_flow"]}, follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"] == "/#sso"
    answer = httpx.post(server.http + "/api/auth/oidc/session", cookies={"chatd_sso": replay.cookies["chatd_sso"]})
    assert answer.status_code == 401 and "not started in this browser" in answer.json()["message"]
    # The handoff is picked up once: the answer cleared it.
    assert 'chatd_sso=""' in answer.headers["set-cookie"] or "Max-Age=0" in answer.headers["set-cookie"]


@pytest.mark.parametrize(
    "mode, words",
    [
        ("tamper", "is not valid for this server"),
        ("audience", "is not valid for this server"),
        ("expired", "has expired"),
        ("nonce", "is not valid for this server"),
        ("alg-none", "is not valid for this server"),
        ("hs256", "is not valid for this server"),
    ],
)
def test_a_spoilt_id_token_signs_nobody_in(sso: Sso, people: Callable[..., ChatPage], mode: str, words: str) -> None:
    provider, server = sso.provider, sso.open
    sub = f"sub-{mode}"
    provider.set_account(sub, preferred_username=f"eve-{mode}")
    eve = people(f"eve-{mode}")
    provider.set_mode(mode)
    try:
        sso_sign_in(eve, server, sub)
        assert words in refused(eve)
    finally:
        provider.set_mode("")
    # Nothing was made for it: a good sign-in now makes the account, under the name nobody took.
    fine = people(f"fine-{mode}")
    sso_sign_in(fine, server, sub)
    assert signed_in(fine)["name"] == f"eve-{mode}"


def test_allowed_domains_admit_only_verified_addresses_there_and_a_disabled_account_stays_out(
    sso: Sso, people: Callable[..., ChatPage]
) -> None:
    provider, server = sso.provider, sso.strict
    provider.set_account("sub-out", preferred_username="outsider", email="out@evil.test")
    out = people("outsider")
    sso_sign_in(out, server, "sub-out")
    assert "e-mail addresses at evil.test may not sign in" in refused(out)
    out.screenshot("sso-refused.png")

    provider.set_account("sub-unverified", email="claims@example.com", email_verified=False)
    unverified = people("unverified")
    sso_sign_in(unverified, server, "sub-unverified")
    assert "has not verified this e-mail address" in refused(unverified)

    provider.set_account("sub-in", preferred_username="insider", email="in@Example.com")
    inside = people("insider")
    sso_sign_in(inside, server, "sub-in")
    assert signed_in(inside)["name"] == "insider"

    # An account an admin disabled stays out, whatever the provider says.
    assert run_cli("users", "disable", "insider", "--config", str(server.config_path)).returncode == 0
    again = people("insider-again")
    sso_sign_in(again, server, "sub-in")
    assert "this account is disabled" in refused(again)


def test_with_password_sign_in_off_only_single_sign_on_is_offered_or_taken(
    sso: Sso, people: Callable[..., ChatPage]
) -> None:
    server = sso.strict
    nobody = people("nobody").goto(server)
    page = nobody.page
    page.wait_for_selector("#sso-button")
    assert page.is_visible("#sso-button")
    nobody.screenshot("sso-only-signin.png")
    for hidden in ("#signin-name", "#signin-password", "#login-button", "#register-button"):
        assert not page.is_visible(hidden), hidden
    info = httpx.get(server.http + "/api/server").json()
    assert info["password_sign_in"] is False and info["registration"] is False and info["sso"] == "Sign in with SSO"
    for path, body in (
        ("/api/auth/login", {"username": "anyone", "password": "whatever1"}),
        ("/api/auth/register", {"username": "anyone", "password": "whatever1"}),
    ):
        r = httpx.post(server.http + path, json=body)
        assert r.status_code == 403 and r.json()["code"] == "forbidden" and "single sign-on" in r.json()["message"]
    # The open server still takes passwords.
    r = httpx.post(sso.open.http + "/api/auth/register", json={"username": "pat", "password": "correct horse"})
    assert r.status_code == 201


def test_start_without_a_reachable_provider_says_so(tmp_path: Path, people: Callable[..., ChatPage]) -> None:
    """A provider that does not answer is a refusal in words on the page, not a hang or a 500."""
    port, dead = free_port(), free_port()
    oidc = {"issuer": f"http://127.0.0.1:{dead}", "client_id": "x", "redirect_base": f"http://127.0.0.1:{port}"}
    server = ChatdProcess(tmp_path, {"server": {"port": port}, "auth": {"mode": "token", "oidc": oidc}}).start()
    try:
        person = people("stranded").goto(server)
        person.page.click("#sso-button")
        assert "cannot reach the sign-in provider" in refused(person)
    finally:
        server.stop()


def test_a_sign_in_started_on_one_node_finishes_on_another_and_is_spent_for_both(
    tmp_path: Path, pg_dsn: str, redis_url: str, namespace: str, people: Callable[..., ChatPage]
) -> None:
    """Two nodes share a PostgreSQL store, and redirect_base names the second (as a load balancer's address
    would): the flow cookie the first node set is good on the second, and the state the second spent is spent for
    the first too. Nothing of the flow lives in a node's memory."""
    ports = free_port(), free_port()
    nodes_http = [f"http://127.0.0.1:{port}" for port in ports]
    client = {"client_id": CLIENT_ID, "client_secret": SECRET, "redirect_uris": [nodes_http[1] + CALLBACK]}
    provider = OidcProvider(tmp_path, [client]).start()
    nodes: list[ChatdProcess] = []
    try:
        for i, port in enumerate(ports):
            oidc = {"issuer": provider.issuer, "client_id": CLIENT_ID, "redirect_base": nodes_http[1]}
            settings = {
                "server": {"port": port},
                "auth": {"mode": "token", "oidc": oidc},
                "store": {"backend": "postgres", "dsn": pg_dsn},
                "broker": {"backend": "redis", "url": redis_url, "namespace": namespace},
            }
            env = {"CHATD_AUTH_OIDC_CLIENT_SECRET": SECRET}
            nodes.append(ChatdProcess(tmp_path / f"node{i}", settings, env).start())
        first, second = nodes
        nomad = people("nomad")
        seen: dict[str, str] = {}

        def watch(response: Any) -> None:
            if response.url.startswith(first.http + "/api/auth/oidc/start"):
                cookie = response.header_value("set-cookie") or ""
                seen["flow"] = cookie.split(";")[0].split("=", 1)[1].strip('"')
            if "/api/auth/oidc/callback" in response.url:
                seen["callback"] = response.url

        nomad.page.on("response", watch)
        sso_sign_in(nomad, first, "sub-nomad")
        assert signed_in(nomad)["name"] == "sub-nomad"
        assert nomad.page.url.startswith(second.http) and seen["callback"].startswith(second.http)

        nomad.context.add_cookies([{"name": "chatd_sso_flow", "value": seen["flow"], "url": first.http + "/api"}])
        nomad.page.goto(seen["callback"].replace(second.http, first.http))
        assert "already used" in refused(nomad)
    finally:
        for node in nodes:
            node.stop()
        provider.stop()
