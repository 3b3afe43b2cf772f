"""Single sign-on with an OpenID Connect provider: the authorization code flow with PKCE, state and nonce.

One sign-in, as the browser sees it:

1. ``GET /api/auth/oidc/start``: chatd makes a *flow* (a random state, nonce and PKCE verifier), puts it in a signed
   cookie that lives ``auth.oidc.flow_ttl`` seconds, and redirects to the provider's authorization endpoint with the
   state, the nonce and the verifier's S256 challenge.
2. The provider signs the user in and redirects back to ``/api/auth/oidc/callback?code=…&state=…``. chatd checks
   the cookie's signature and age, that the state in the URL is the cookie's, and claims the state in the store
   (``Store.claim_once``), so a callback works once on the whole deployment, whichever node the browser reaches.
3. chatd trades the code and the verifier for tokens at the token endpoint (the back channel, with the client
   secret) and validates the ID token with joserfc against the provider's JWKS: signature (asymmetric algorithms
   only), ``iss``, ``aud`` (and ``azp`` with several audiences), ``exp``, ``iat``, and the flow's ``nonce``.
4. The user is found by (issuer, ``sub``) (``Store.user_for_identity``), never by name or e-mail; a first sign-in
   makes a password-less account named after ``preferred_username`` (the first free spelling). chatd issues one of
   its own API tokens, exactly as a password login does, and hands it to the page (``chatd.gateway.sso``).

Nothing here is per-process state a second node would contradict: the flow travels in the browser's cookie, signed
with the deployment's key (``chatd.gateway.tickets.deployment_key``), and its one use is spent in the store. The
provider's discovery document and keys are cached per process; they are the provider's, the same for every node.

This module does the protocol and no web framework; the routes are in ``chatd.gateway.sso``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import msgspec
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from chatd.config import ConfigError, OidcConfig
from chatd.errors import ChatError, Err
from chatd.protocol.frames import USER_MAX
from chatd.store.base import UserRecord
from chatd.store.roles import AccountStore, DeploymentStore

log = logging.getLogger("chatd.accounts.sso")

CALLBACK_PATH = "/api/auth/oidc/callback"
# Asymmetric algorithms only: HS* would make the client secret a signing key, and "none" signs nothing.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LEEWAY = 60  # seconds of clock difference between chatd and the provider that exp and iat forgive
METADATA_TTL = 3600.0  # the discovery document and the keys are read again after this long
JWKS_REFRESH_MIN = 30.0  # an unknown key id refetches the keys at most this often (key rotation)
RESPONSE_MAX = 1024 * 1024  # bytes read from the provider per answer
HTTP_TIMEOUT = 10.0
CLAIM_SLACK = 60.0  # a spent state is remembered this much past its flow's expiry, for clocks that disagree
NAME_TRIES = 20  # alice, alice-2, ... alice-20, then a random suffix
_name_chars = re.compile(r"[^A-Za-z0-9_.-]+")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def s256(verifier: str) -> str:
    """The PKCE code challenge of ``verifier`` (RFC 7636, section 4.2)."""
    return _b64(hashlib.sha256(verifier.encode()).digest())


class Flow(msgspec.Struct, array_like=True, frozen=True):
    """One sign-in in progress, carried by the browser in a signed cookie."""

    state: str
    nonce: str
    verifier: str
    expires: float


class Identity(msgspec.Struct, frozen=True):
    """Who the provider says signed in, from a validated ID token."""

    issuer: str
    subject: str
    claims: dict[str, Any]


class Signer:
    """HMAC-SHA256 over a payload, with a key of its own derived from the deployment's (so nothing signed here is
    ever a valid ticket, or the reverse)."""

    def __init__(self, deployment_key: bytes, purpose: str) -> None:
        self._key = hmac.new(deployment_key, f"chatd-sso:{purpose}".encode(), hashlib.sha256).digest()

    def sign(self, payload: bytes) -> str:
        text = _b64(payload)
        return f"{text}.{_b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())}"

    def open(self, signed: str) -> bytes | None:
        text, _, sig = signed.partition(".")
        want = _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())
        if not sig or len(signed) > 4096 or not hmac.compare_digest(sig, want):
            return None
        try:
            return _unb64(text)
        except ValueError:
            return None


def read_client_secret(cfg: OidcConfig) -> str:
    """``client_secret``, or the first line of ``client_secret_file``."""
    if not cfg.client_secret_file:
        return cfg.client_secret
    try:
        return Path(cfg.client_secret_file).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"'auth.oidc.client_secret_file': cannot read {cfg.client_secret_file}: {e}") from None


def account_names(claims: dict[str, Any]) -> list[str]:
    """Names to try, in order, for the account of a first sign-in: ``preferred_username`` (else the e-mail's local
    part, else ``user``) made fit for chatd's name rule, then numbered variants, then one with a random suffix. The
    name is only a starting point: the account is found by (issuer, sub) from then on."""
    raw = ""
    for key in ("preferred_username", "nickname", "email", "name"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            raw = value.split("@")[0] if key == "email" else value
            break
    base = _name_chars.sub("-", raw).strip("-_.")[:USER_MAX] or "user"
    if not base[0].isalnum():
        base = "u" + base[: USER_MAX - 1]
    names = [base]
    for n in range(2, NAME_TRIES + 1):
        suffix = f"-{n}"
        names.append(base[: USER_MAX - len(suffix)] + suffix)
    suffix = "-" + secrets.token_hex(4)
    names.append(base[: USER_MAX - len(suffix)] + suffix)
    return names


def email_domain_allowed(claims: dict[str, Any], allowed: list[str]) -> str | None:
    """None when ``allowed`` admits this sign-in, else why not. Only a verified e-mail counts: a provider that lets
    users type any address would otherwise let anyone claim a domain."""
    if not allowed:
        return None
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        return "the provider gave no e-mail address, and this server admits only some e-mail domains"
    if claims.get("email_verified") is not True:
        return "the provider has not verified this e-mail address, and this server admits only some e-mail domains"
    domain = email.rsplit("@", 1)[1].lower()
    if domain not in allowed:
        return f"e-mail addresses at {domain} may not sign in to this server"
    return None


class OidcClient:
    """The relying party: discovery, the authorization request, the code exchange and ID-token validation."""

    def __init__(self, cfg: OidcConfig, http: httpx.AsyncClient | None = None) -> None:
        self.cfg = cfg
        self.issuer = cfg.issuer.rstrip("/")
        self.redirect_uri = cfg.redirect_base.rstrip("/") + CALLBACK_PATH
        self._secret = read_client_secret(cfg)
        self._http = http or httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    async def close(self) -> None:
        await self._http.aclose()

    # --- the provider's published facts ------------------------------------------------------------------------

    async def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > RESPONSE_MAX:
                raise ChatError(Err.UNAVAILABLE, f"the sign-in provider's {what} is larger than {RESPONSE_MAX} bytes")
        try:
            value = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise ChatError(Err.UNAVAILABLE, f"the sign-in provider's {what} is not JSON") from None
        if not isinstance(value, dict):
            raise ChatError(Err.UNAVAILABLE, f"the sign-in provider's {what} is not a JSON object")
        return value

    async def _get(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http.stream("GET", url, headers={"Accept": "application/json"}) as r:
                if r.status_code != 200:
                    raise ChatError(Err.UNAVAILABLE, f"the sign-in provider's {what} answered HTTP {r.status_code}")
                return await self._json(r, what)
        except httpx.HTTPError as e:
            log.warning("sign-in provider unreachable (%s): %s", url, e)
            raise ChatError(Err.UNAVAILABLE, f"cannot reach the sign-in provider ({what})") from None

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (OpenID Connect Discovery 1.0), whose ``issuer`` must be the configured one."""
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL:
            doc = await self._get(self.issuer + "/.well-known/openid-configuration", "discovery document")
            if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
                raise ChatError(Err.UNAVAILABLE, "the sign-in provider's discovery document names another issuer")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(doc.get(key), str):
                    raise ChatError(Err.UNAVAILABLE, f"the sign-in provider's discovery document has no {key}")
            self._metadata, self._metadata_at = doc, time.monotonic()
        return self._metadata

    async def _key_set(self, refresh: bool = False) -> KeySet:
        stale = time.monotonic() - self._keys_at > (JWKS_REFRESH_MIN if refresh else METADATA_TTL)
        if self._keys is None or stale:
            doc = await self._get((await self.metadata())["jwks_uri"], "key set")
            keys = doc.get("keys")
            if not isinstance(keys, list):
                raise ChatError(Err.UNAVAILABLE, "the sign-in provider's key set has no list of keys")
            try:
                self._keys = KeySet.import_key_set({"keys": keys})
            except (JoseError, ValueError, KeyError, TypeError) as e:
                raise ChatError(Err.UNAVAILABLE, f"the sign-in provider's key set is not usable: {e}") from None
            self._keys_at = time.monotonic()
        return self._keys

    # --- the flow ----------------------------------------------------------------------------------------------

    async def begin(self) -> tuple[str, Flow]:
        """The authorization URL to send the browser to, and the flow to keep in its cookie."""
        meta = await self.metadata()
        flow = Flow(
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(48),  # 64 characters, within RFC 7636's 43-128
            round(time.time() + self.cfg.flow_ttl, 3),
        )
        query = {
            "response_type": "code",
            "client_id": self.cfg.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.cfg.scopes),
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": s256(flow.verifier),
            "code_challenge_method": "S256",
        }
        endpoint = meta["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}", flow

    async def finish(self, store: DeploymentStore, flow: Flow | None, params: dict[str, str]) -> Identity:
        """Check the provider's answer against the browser's flow, spend the flow, trade the code and validate the
        ID token. Raises ChatError with words for the person at the browser."""
        if params.get("error"):
            detail = params.get("error_description") or params["error"]
            raise ChatError(Err.UNAUTHORIZED, f"the sign-in provider refused: {detail[:200]}")
        state, code = params.get("state", ""), params.get("code", "")
        if flow is None or not state or not hmac.compare_digest(state, flow.state):
            raise ChatError(Err.UNAUTHORIZED, "this sign-in was not started in this browser, or it expired; try again")
        now = time.time()
        if flow.expires < now:
            raise ChatError(Err.UNAUTHORIZED, "this sign-in took too long; start again")
        if "iss" in params and params["iss"].rstrip("/") != self.issuer:  # RFC 9207: a mix-up of providers
            raise ChatError(Err.UNAUTHORIZED, "the sign-in answer came from another provider")
        if not await store.claim_once(f"sso:{flow.state}", flow.expires - now + CLAIM_SLACK):
            raise ChatError(Err.UNAUTHORIZED, "this sign-in was already used; start again")
        if not code:
            raise ChatError(Err.UNAUTHORIZED, "the sign-in provider sent no authorization code")
        tokens = await self._exchange(code, flow.verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise ChatError(Err.UNAUTHORIZED, "the sign-in provider sent no ID token")
        return await self.validate(id_token, flow.nonce)

    async def _exchange(self, code: str, verifier: str) -> dict[str, Any]:
        meta = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        form["code_verifier"] = verifier
        auth: httpx.BasicAuth | None = None
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if not self._secret:
            form["client_id"] = self.cfg.client_id  # a public client: PKCE is its proof
        elif "client_secret_basic" in methods:
            # RFC 6749 section 2.3.1: both parts form-encoded before Basic encoding.
            auth = httpx.BasicAuth(quote(self.cfg.client_id, safe=""), quote(self._secret, safe=""))
        else:
            form |= {"client_id": self.cfg.client_id, "client_secret": self._secret}
        try:
            async with self._http.stream(
                "POST", meta["token_endpoint"], data=form, auth=auth, headers={"Accept": "application/json"}
            ) as r:
                body = await self._json(r, "token answer")
                if r.status_code != 200:
                    # invalid_grant: a code used twice, expired, or not made for this verifier or redirect URI.
                    error = str(body.get("error", f"HTTP {r.status_code}"))
                    log.info("sign-in code refused by the provider: %s %s", error, body.get("error_description", ""))
                    raise ChatError(Err.UNAUTHORIZED, f"the sign-in provider refused the code ({error}); start again")
                return body
        except httpx.HTTPError as e:
            log.warning("sign-in provider unreachable (token endpoint): %s", e)
            raise ChatError(Err.UNAVAILABLE, "cannot reach the sign-in provider; try again") from None

    async def validate(self, id_token: str, nonce: str) -> Identity:
        """The identity in ``id_token`` after OpenID Connect Core 3.1.3.7's checks; ChatError(UNAUTHORIZED) for
        any token that fails one, which is logged with the reason (the page gets a plain refusal)."""
        meta = await self.metadata()
        offered = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in ALGORITHMS if a in offered]
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), algorithms=algorithms)
            except InvalidKeyIdError:  # the provider may have rotated its keys since they were read
                token = jwt.decode(id_token, await self._key_set(refresh=True), algorithms=algorithms)
            claims = dict(token.claims)
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY,
                iss={"essential": True, "value": self.issuer},
                sub={"essential": True},
                aud={"essential": True, "value": self.cfg.client_id},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(claims)
        except ExpiredTokenError:
            log.warning("ID token refused: expired")
            raise ChatError(Err.UNAUTHORIZED, "the sign-in provider's ID token has expired; start again") from None
        except (JoseError, ValueError, TypeError) as e:
            log.warning("ID token refused: %s", e)
            raise ChatError(Err.UNAUTHORIZED, "the sign-in provider's ID token is not valid for this server") from None
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.cfg.client_id:
            log.warning("ID token refused: several audiences and azp %r", claims.get("azp"))
            raise ChatError(Err.UNAUTHORIZED, "the sign-in provider's ID token is not valid for this server")
        return Identity(self.issuer, str(claims["sub"]), claims)


async def account_for(store: AccountStore, cfg: OidcConfig, identity: Identity, admin_if_none: bool) -> UserRecord:
    """The chatd user of a validated identity: found by (issuer, sub), or made on the first sign-in, after the
    allowed-domains rule."""
    refused = email_domain_allowed(identity.claims, cfg.allowed_domains)
    if refused:
        raise ChatError(Err.FORBIDDEN, refused)
    user = await store.user_for_identity(identity.issuer, identity.subject)
    if user is None:
        user = await store.create_identity_user(
            identity.issuer, identity.subject, account_names(identity.claims), admin_if_none=admin_if_none
        )
        if user is None:
            raise ChatError(Err.FORBIDDEN, "the account of this sign-in was deleted; ask an admin")
        log.info("single sign-on made user %d for a first sign-in", user.id)
    if user.disabled:
        raise ChatError(Err.FORBIDDEN, "this account is disabled; ask an admin")
    return user
