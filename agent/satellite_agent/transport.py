"""The agent's HTTP to the server: sessions with the TLS trust of the product's state, the
configured proxy, nonces, signed requests (one retry when the nonce went stale) and the
verification of the server's signed answers.

TLS to an https:// server trusts the system's CAs (or the configured CA file instead) and
the pinned CA, which issues the server's own TLS certificate. An answer counts only if the
server's signing certificate (the pinned one, or for a registration the one the answer
carries, which the caller then checks against the token) signed it for this very request
(nonce and path).
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
import msgspec

from satellite_agent import trust
from satellite_agent.errors import AgentError, RequestRefused, ServerUnreachable
from satellite_agent.state import AgentState, shown_url
from satellite_protocol import device as wire
from satellite_protocol import outbound
from satellite_protocol.crypto import jose
from satellite_protocol.crypto.keys import PrivateKey, PublicKey, ec_public_key
from satellite_protocol.crypto.pki import CertificateError, load_pem_certificate
from satellite_protocol.untrusted import NESTED_TOO_DEEP, too_deep

T = TypeVar("T")
MAX_ANSWER_BYTES = 1_048_576
# How long a nonce from an answer is kept for the next request: well within the time a
# server takes it (satellite: 15 minutes). An older one would be refused as stale, the
# request signed and sent again: a product reporting every few hours asks for a new one.
KEEP_NONCE = dt.timedelta(minutes=5)


class Transport:
    """One product's connection to its server (the URL, proxy and trust are the state's)."""

    def __init__(self, timeout: float, clock: Callable[[], dt.datetime]) -> None:
        """``timeout``: seconds a request may take in all (connecting: 10 at most);
        ``clock``: the product's, for the age of a kept nonce."""
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=min(10.0, timeout))
        self._clock = clock
        # The next nonce, from the last answer: the server URL that gave it, the nonce,
        # when it came.
        self._nonce: tuple[str, str, dt.datetime] | None = None
        # Inside ``connected``: the kept session and the trust it was made for, and the
        # sessions it replaced when the trust changed (closed when ``connected`` ends: a
        # request may still be using one).
        self._kept_session: tuple[trust.Trust | None, aiohttp.ClientSession] | None = None
        self._retired: list[aiohttp.ClientSession] = []
        self._signing_key: tuple[str, PublicKey] | None = None

    def offer_nonce(self, url: str, nonce: str | None) -> None:
        """A nonce the server ``url`` handed out in an answer: the next request to it uses
        it instead of asking for one. (Not secret, and only ever used once: a stale or
        foreign one costs the one retry of a bad nonce, nothing else.)"""
        if nonce:
            self._nonce = (url, nonce, self._clock())

    def _take_nonce(self, url: str) -> str | None:
        kept, self._nonce = self._nonce, None
        if kept is None or kept[0] != url or self._clock() - kept[2] > KEEP_NONCE:
            return None
        return kept[1]

    @asynccontextmanager
    async def connected(self, state: AgentState) -> AsyncIterator[None]:
        """Keep one HTTP session (and its keep-alive connections) for the requests made
        inside; without it every request opens and closes a session of its own. Inside
        another (the runner's round in a product's own), the outer one is used."""
        if self._kept_session is not None:
            yield
            return
        self._kept_session = (_tls_trust(state), self._new_session(state))
        try:
            yield
        finally:
            sessions = [self._kept_session[1], *self._retired]
            self._kept_session = None
            self._retired = []
            for session in sessions:
                await session.close()

    @asynccontextmanager
    async def _session(self, state: AgentState) -> AsyncIterator[aiohttp.ClientSession]:
        kept = self._kept_session
        if kept is None:
            async with self._new_session(state) as session:
                yield session
            return
        wanted = _tls_trust(state)
        if kept[0] != wanted:
            # The trust changed (a registration pinned the server's CA): one new kept
            # session from now on, not a new one per request.
            self._retired.append(kept[1])
            kept = self._kept_session = (wanted, self._new_session(state))
        yield kept[1]

    def _new_session(self, state: AgentState) -> aiohttp.ClientSession:
        connector = None
        tls = _tls_trust(state)
        if tls is not None:
            ca_file, pinned = tls
            try:
                context = outbound.tls_context(ca_file, pinned)
            except (OSError, ssl.SSLError) as exc:
                raise AgentError(f"cannot use {ca_file or 'the pinned CA'}: {exc}") from exc
            if context is not None:
                connector = aiohttp.TCPConnector(ssl=context)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            trust_env=False,  # the proxy is what the transport settings say, nothing else
        )

    def proxy(self, state: AgentState) -> dict[str, Any]:
        """aiohttp arguments for the configured proxy, if any."""
        transport = state.transport
        return outbound.proxy_arguments(
            transport.url, transport.proxy_url, transport.proxy_user, transport.proxy_password
        )

    async def _fetch_nonce(self, session: aiohttp.ClientSession, state: AgentState) -> str:
        url = state.transport.url.rstrip("/") + wire.PREFIX + "/nonce"
        try:
            async with session.get(url, **self.proxy(state)) as response:
                if response.status == 407:
                    raise AgentError("the proxy refused the credentials (407)")
                if response.status == 503:
                    raise _unavailable(
                        state, _problem(await _read_at_most(response.content, MAX_ANSWER_BYTES))
                    )
                nonce = response.headers.get(wire.NONCE_HEADER)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServerUnreachable(
                f"cannot reach {shown_url(state.transport.url)}: {_reason(exc)}"
            ) from exc
        if not nonce:
            raise AgentError(
                f"{shown_url(state.transport.url)} did not answer as a satellite server"
            )
        return nonce

    async def post(
        self,
        state: AgentState,
        path: str,
        payload: msgspec.Struct | Callable[[str], msgspec.Struct],
        key: PrivateKey,
        header: dict[str, Any],
        signing_certificate: str | None,
        answer_type: type[T],
    ) -> T:
        """Sign, send, verify the signed answer; one retry when the nonce went stale.

        ``payload`` may be a function of the nonce, for messages that must bind it.
        """
        proxy = self.proxy(state)
        headers = {"Content-Type": "application/jose+json", **proxy.pop("headers", {})}
        if not state.share_host_identity:
            # (So that what it shared before it was set is cleared there too.)
            header = {**header, wire.WITHHOLD_HOST: True}
        url = state.transport.url.rstrip("/") + path
        async with self._session(state) as session:
            for attempt in (1, 2):
                nonce = self._take_nonce(state.transport.url) or await self._fetch_nonce(
                    session, state
                )
                body = msgspec.json.encode(payload(nonce) if callable(payload) else payload)
                message = jose.sign(key, body, {**header, "nonce": nonce, "url": path})
                try:
                    async with session.post(
                        url,
                        data=msgspec.json.encode(message),
                        headers=headers,
                        **proxy,
                    ) as response:
                        self.offer_nonce(
                            state.transport.url, response.headers.get(wire.NONCE_HEADER)
                        )
                        raw = await _read_at_most(response.content, MAX_ANSWER_BYTES + 1)
                        status = response.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    # aiohttp's timeouts raise TimeoutError, not a ClientError.
                    raise ServerUnreachable(
                        f"cannot reach {shown_url(state.transport.url)}: {_reason(exc)}"
                    ) from exc
                if status == 407:
                    raise AgentError("the proxy refused the credentials (407)")
                if len(raw) > MAX_ANSWER_BYTES:
                    raise AgentError("the answer is too large")
                if status == 503:  # the server is there but cannot work now: try later
                    raise _unavailable(state, _problem(raw))
                if status != 200:
                    problem = _problem(raw)
                    if attempt == 1 and problem.get("type", "").endswith(":bad-nonce"):
                        continue
                    raise RequestRefused(status, problem)
                return self._verified(raw, nonce, path, signing_certificate, answer_type, state)
        raise AssertionError("unreachable")

    def _verified(
        self,
        raw: bytes,
        nonce: str,
        path: str,
        signing_certificate: str | None,
        answer_type: type[T],
        state: AgentState,
    ) -> T:
        try:
            if too_deep(raw):
                raise msgspec.DecodeError(NESTED_TOO_DEEP)
            message = msgspec.json.decode(raw, type=dict[str, Any])
        except msgspec.DecodeError as exc:
            raise AgentError("the answer is not a signed message") from exc
        certificate_pem = signing_certificate or _unverified_field(message, "signingCertificate")
        try:
            header, payload = jose.verify(message, self.certificate_key(certificate_pem))
        except jose.InvalidSignature as exc:
            raise AgentError(f"the answer's signature does not verify: {exc}") from exc
        if header.get("nonce") != nonce or header.get("url") != path:
            raise AgentError("the answer is not for this request (nonce or path differ)")
        try:
            return msgspec.json.decode(payload, type=answer_type)
        except msgspec.MsgspecError as exc:
            raise AgentError(f"the answer is not understood: {exc}") from exc

    def certificate_key(self, certificate_pem: str) -> PublicKey:
        """The public key of a signing certificate; the last one's is kept parsed."""
        if self._signing_key is not None and self._signing_key[0] == certificate_pem:
            return self._signing_key[1]
        try:
            key = ec_public_key(load_pem_certificate(certificate_pem).public_key())
        except CertificateError as exc:
            raise AgentError(f"the signing certificate is not usable: {exc}") from exc
        if key is None:
            raise AgentError("the signing certificate does not hold an EC key")
        self._signing_key = (certificate_pem, key)
        return key


def _tls_trust(state: AgentState) -> trust.Trust | None:
    """The trust a session needs: None when it speaks no TLS (an http:// server through
    no HTTPS proxy), which then changes nothing, and the TLS context, costly to build
    (the system's CAs are read each time), is not built."""
    transport = state.transport
    if not transport.url.startswith("https://") and not (transport.proxy_url or "").startswith(
        "https://"
    ):
        return None
    return trust.trust(state)


def _unavailable(state: AgentState, problem: dict[str, Any]) -> ServerUnreachable:
    detail = problem.get("detail") or "no reason given"
    return ServerUnreachable(f"{shown_url(state.transport.url)} is unavailable (503): {detail}")


async def _read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body up to ``limit`` bytes. (``read(n)`` alone returns what has arrived so far,
    which for an answer in several TCP segments is only its beginning.)"""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _reason(exc: BaseException) -> str:
    """What went wrong on the way (a TimeoutError says nothing by itself)."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return "no answer in time"
    return str(exc)


def _problem(raw: bytes) -> dict[str, Any]:
    try:
        if too_deep(raw):
            raise msgspec.DecodeError(NESTED_TOO_DEEP)
        problem = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return {"detail": raw[:200].decode("utf-8", "replace")}
    return problem if isinstance(problem, dict) else {"detail": str(problem)}


def _unverified_field(message: dict[str, Any], name: str) -> str:
    """A field of a not-yet-verified payload: only to find the key it must verify with."""
    try:
        value = jose.unverified_payload(message).get(name)
    except jose.InvalidSignature as exc:
        raise AgentError("the answer is not a signed message") from exc
    if not isinstance(value, str):
        raise AgentError("the registration answer carries no signing certificate")
    return value
