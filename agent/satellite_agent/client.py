"""The product side of the device API: what a licensed product does, as a library.

Trust: a registration token ends with the SHA-256 fingerprint of the server's CA. The
agent accepts a registration answer only if its CA certificate has that fingerprint, its
signing certificate is issued by that CA, and the answer is signed by that certificate's
key for this very request (nonce and path). From then on the CA and signing certificate
are pinned in the agent's state, so a gateway or proxy in between can neither read a
secret (there is none on the wire after the token) nor change an answer.

Before the first registration the agent fetches the server's CA certificate and keeps it
only if the token's fingerprint matches: it issues the server's own TLS certificate, so a
product verifies the server with no file of its own (``transport``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import structlog

from satellite_agent import trust

# The library's errors: a product imports them from here, with Agent.
from satellite_agent.errors import AgentError as AgentError
from satellite_agent.errors import RequestRefused as RequestRefused
from satellite_agent.errors import ServerUnreachable as ServerUnreachable
from satellite_agent.registration import (
    check_registration_answer,
    check_udi,
    identity_csr,
    register_request,
    split_token,
)
from satellite_agent.state import (
    AgentState,
    Alarm,
    Identity,
    RegistrationState,
    StateDir,
)
from satellite_agent.transport import Transport
from satellite_protocol import device as wire
from satellite_protocol.crypto import jose
from satellite_protocol.crypto.keys import PrivateKey
from satellite_protocol.crypto.pki import (
    CertificateError,
    check_issued_by,
    load_pem_certificate,
)

T = TypeVar("T")
EXPORT_ALARM = "SmartLicenseExportControlNotAllowed"

log = structlog.get_logger("satellite.agent")
AlarmCallback = Callable[[Alarm], None]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Agent:
    """One product instance: its state directory and its conversation with the server."""

    def __init__(
        self,
        state_dir: Path,
        clock: Callable[[], dt.datetime] = _now,
        on_alarm: AlarmCallback | None = None,
        *,
        timeout: float = 30.0,
    ) -> None:
        """``on_alarm``: called with each alarm the product raises to its administrator
        (after it is saved in the state), e.g. SmartLicenseExportControlNotAllowed.
        ``timeout``: seconds a request may take in all (connecting: 10 at most)."""
        self.dir = StateDir(state_dir, clock)
        self._transport = Transport(timeout, clock)
        self._clock = clock
        self._on_alarm = on_alarm

    # --- state -----------------------------------------------------------------------------

    def init(self, identity: Identity) -> AgentState:
        check_udi(identity)
        if self.dir.exists():
            raise AgentError(f"{self.dir.path} holds an agent state already")
        return self.dir.create(identity)

    @property
    def state(self) -> AgentState:
        return self.dir.load()

    def save(self, state: AgentState) -> None:
        """Write a whole state: only for a state loaded under ``self.dir.locked()`` (else
        ``update``)."""
        self.dir.save(state)

    def update(self, change: Callable[[AgentState], T]) -> T:
        """Load-modify-save of the state under its lock (see ``StateDir.update``)."""
        return self.dir.update(change)

    def now(self) -> dt.datetime:
        return self._clock()

    def judged_now(self, state: AgentState | None = None) -> dt.datetime:
        """The time expiry is judged by: the clock, or the latest time this product has
        seen if that is later (a clock set back revives nothing)."""
        return (state or self.state).time_seen.judged_now(self._clock())

    # --- alarms ----------------------------------------------------------------------------

    def _export_alarm(
        self, state: AgentState, cause: str, features: list[str] | None = None
    ) -> Alarm | None:
        """The product's export keys lost their licenses on the server (``cause``): the
        features stay enabled, the administrator is told. ``features``: those the server
        released (None: every key the product holds). Call ``announce`` with the result
        once the state is saved."""
        held = [
            key
            for key in state.export.keys
            if not key.released and (features is None or key.feature in features)
        ]
        if not held:
            return None
        for key in held:
            key.released = True
        features = [key.feature for key in held]
        alarm = Alarm(
            name=EXPORT_ALARM,
            raised_at=self._clock(),
            features=features,
            message=(
                f"{cause}: export-controlled feature(s) {', '.join(features)} are no longer "
                "covered by an export key license, yet stay enabled on this product; set it to "
                "a mode without them (e.g. non-secure) or register again with a token that "
                "allows export-controlled features and request them again"
            ),
        )
        state.export.alarms.append(alarm)
        return alarm

    def announce(self, alarm: Alarm | None) -> None:
        """Log the alarm and hand it to the library's callback."""
        if alarm is None:
            return
        log.warning("agent.alarm", alarm=alarm.name, features=alarm.features, message=alarm.message)
        if self._on_alarm is not None:
            self._on_alarm(alarm)

    def verify_server_signed(self, message: dict[str, str]) -> tuple[dict[str, Any], bytes]:
        """A JWS signed by the server's signing certificate this product pinned."""
        state = self.state
        if state.signing_certificate is None:
            raise AgentError("no server signing certificate is pinned: register first")
        try:
            return jose.verify(message, self._transport.certificate_key(state.signing_certificate))
        except jose.InvalidSignature as exc:
            raise AgentError(f"its signature does not verify: {exc}") from exc

    # --- transport -------------------------------------------------------------------------

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[None]:
        """Keep one HTTP session (and its keep-alive connections) for the requests made
        inside; without it every request opens and closes a session of its own. Inside
        another, the outer one is used."""
        async with self._transport.connected(self.state):
            yield

    # --- commands --------------------------------------------------------------------------

    async def register(self, token: str, *, force: bool = False) -> AgentState:
        """Register (or re-register) with a token; the token pins the server's CA. Refused
        while specific license reservation is enabled (the product is then never online).

        Registered already: the request proves the current key, so the server moves this
        product's registration. ``force``: replace a registration of this UDI that this
        product cannot prove is its own (one in the token's virtual account only)."""
        state = self.state
        if state.reservation.enabled:
            raise AgentError(
                "specific license reservation is enabled: return and disable it before registering"
            )
        _, fingerprint = split_token(token)
        if trust.fingerprint(state.ca_certificate) != fingerprint:
            # For TLS, before anything is sent; the state pins the CA once the answer
            # checked out.
            fetched, nonce = await trust.fetch_ca(
                state, self._transport.proxy(state), self._transport.timeout
            )
            self._transport.offer_nonce(state.transport.url, nonce)
            if fetched is not None and trust.fingerprint(fetched) != fingerprint:
                raise AgentError(
                    "the server's CA does not match the token: this is not the server that "
                    "issued the token (or someone is in between); nothing was sent"
                )
            state.ca_certificate = fetched
        key = self.dir.new_key()
        jwk = jose.public_jwk(key.public_key())
        thumbprint = jose.jwk_thumbprint(jwk)
        path = wire.PREFIX + "/register"
        csr = identity_csr(key, state.identity)
        current = self._current_key(state)
        request_for = register_request(state, token, csr, thumbprint, current, path, force)
        answer = await self._transport.post(
            state,
            path,
            request_for,
            key,
            {"jwk": jwk},
            None,
            wire.RegisterAnswer,
        )
        # Trust only what the token pinned.
        check_registration_answer(answer, fingerprint, self._clock())
        with self.dir.locked():
            # What changed while the request was on its way stays (e.g. a key installed by
            # the runner); the registration's fields are the answer's.
            state = self.state
            self.dir.save_key(key)
            alarm = self._reregistration_alarm(state, answer)
            state = self._apply_registration(state, answer)
            self.save(state)
        self.announce(alarm)
        return state

    def _current_key(self, state: AgentState) -> tuple[str, PrivateKey] | None:
        """The product instance id and key of this product's last registration, if any (the
        server says whether it is still the live one)."""
        if state.product_instance_id is None or not self.dir.key_file.exists():
            return None
        try:
            return state.product_instance_id, self.dir.load_key()
        except ValueError as exc:
            raise AgentError(f"the product's key cannot be read: {exc}") from exc

    def _reregistration_alarm(self, state: AgentState, answer: wire.RegisterAnswer) -> Alarm | None:
        """The keys the server released as this product registered again: those it names,
        or all of them when the server made a new product instance of it (the old one's
        keys are not this registration's)."""
        if not state.export.keys:
            return None
        if (
            state.product_instance_id is not None
            and state.product_instance_id != answer.registration.product_instance_id
        ):
            return self._export_alarm(state, "registered again as a new product instance")
        if answer.released_export_features:
            return self._export_alarm(
                state, "registered again without them", answer.released_export_features
            )
        return None

    def _apply_registration(self, state: AgentState, answer: wire.RegisterAnswer) -> AgentState:
        state.export.pending = []
        state.registration = "registered"
        state.product_instance_id = answer.registration.product_instance_id
        state.virtual_account = answer.registration.virtual_account
        state.export_controlled = answer.registration.export_controlled
        state.ca_certificate = answer.ca_certificate
        state.signing_certificate = answer.signing_certificate
        state.certificate = answer.registration.certificate
        state.certificate_expires_at = answer.registration.certificate_expires_at
        state.renew_registration_after = answer.registration.renew_registration_after
        state.authorization = msgspec.to_builtins(answer.authorization)
        state.time_seen.vouched(answer.authorization.issued_at)
        state.last_error = None
        return state

    def _registered(self) -> tuple[AgentState, str, str]:
        state = self.state
        if (
            state.registration != "registered"
            or state.product_instance_id is None
            or state.signing_certificate is None
        ):
            raise AgentError("this product is not registered: run 'register TOKEN' first")
        return state, state.product_instance_id, state.signing_certificate

    async def signed_request(
        self, what: str, payload: msgspec.Struct, answer_type: type[T]
    ) -> tuple[AgentState, T]:
        state, product_id, signing = self._registered()
        path = f"{wire.PREFIX}/products/{product_id}/{what}"
        try:
            answer = await self._transport.post(
                state, path, payload, self.dir.load_key(), {"kid": product_id}, signing, answer_type
            )
        except RequestRefused as refused:
            self._registration_ended(
                product_id,
                str(refused.problem.get("type", "")),
                str(refused.problem.get("detail", "")),
            )
            raise
        return state, answer

    def _registration_ended(self, product_id: str, kind: str, detail: str) -> None:
        """The server ended this registration (removed by an admin, expired, or replaced by
        a forced registration): say so in the product's state, with the server's ``detail``,
        so that 'status' shows it, 'register' is offered and the runner stops. The
        server released its export keys with it (on removal, or by the job that ends
        expired registrations): they are marked released and the alarm is raised, as on
        deregistration."""
        ended: dict[str, tuple[RegistrationState, str]] = {
            ":registration-expired": ("registration_expired", "the registration expired"),
            ":registration-replaced": ("replaced", "the registration was replaced"),
            ":product-ended": ("removed", "removed from the server"),
        }
        found = next((v for k, v in ended.items() if kind.endswith(k)), None)
        if found is None:
            return
        registration, cause = found

        def change(state: AgentState) -> Alarm | None:
            if state.product_instance_id != product_id or state.registration != "registered":
                return None  # registered again (or ended) meanwhile: not this registration
            state.registration = registration
            state.last_error = detail  # the server's words, for 'status'
            state.export.pending = []
            return self._export_alarm(state, cause)

        self.announce(self.update(change))

    def _answered(self, product_id: str, change: Callable[[AgentState], None]) -> AgentState:
        """Apply what an answer of this registration says onto the state as it is now,
        unless the product registered again or left meanwhile."""

        def apply(state: AgentState) -> AgentState:
            if state.product_instance_id == product_id and state.registration == "registered":
                change(state)
            return state

        return self.update(apply)

    async def report_usage(self, usage: dict[str, int]) -> AgentState:
        report = wire.UsageReport(
            usage=[wire.UsageEntry(tag=tag, count=count) for tag, count in sorted(usage.items())]
        )
        state, authorization = await self.signed_request("usage", report, wire.Authorization)

        def change(now: AgentState) -> None:
            now.usage = dict(usage)
            now.authorization = msgspec.to_builtins(authorization)
            now.time_seen.vouched(authorization.issued_at)

        return self._answered(state.product_instance_id or "", change)

    async def renew_authorization(self) -> AgentState:
        state, authorization = await self.signed_request(
            "authorization", wire.NoParameters(), wire.Authorization
        )

        def change(now: AgentState) -> None:
            now.authorization = msgspec.to_builtins(authorization)
            now.time_seen.vouched(authorization.issued_at)

        return self._answered(state.product_instance_id or "", change)

    async def renew_registration(self) -> AgentState:
        """A new key and a new ID certificate; the old key signs the request for the new."""
        state, product_id, _ = self._registered()
        key = self.dir.new_key()
        request = wire.RenewRegistrationRequest(csr=identity_csr(key, state.identity))
        # (As every signed request: an ended registration is noted, so the runner stops.)
        state, answer = await self.signed_request("registration", request, wire.Registration)
        try:
            check_issued_by(
                load_pem_certificate(answer.certificate),
                load_pem_certificate(state.ca_certificate or ""),
                self._clock(),
            )
        except CertificateError as exc:
            raise AgentError(f"the new certificate does not check out: {exc}") from exc
        with self.dir.locked():
            self.dir.save_key(key)

            def change(now: AgentState) -> None:
                now.certificate = answer.certificate
                now.certificate_expires_at = answer.certificate_expires_at
                now.renew_registration_after = answer.renew_registration_after

            return self._answered(product_id, change)

    # --- evaluation ------------------------------------------------------------------------

    def evaluation_ends(self, state: AgentState | None = None) -> dt.datetime:
        state = state or self.state
        return state.first_start + dt.timedelta(days=state.evaluation_days)

    def may_add_users(self) -> bool:
        """What the product asks before adding users or devices.

        Registered with a valid authorization: yes. Unregistered: only during the evaluation
        period counted from the first start; after it, no until the product registers.
        Judged by the latest time seen (``judged_now``), which this check records.
        """
        self.dir.checkpoint()
        return self.allows_users(self.state)

    def authorization_expired(self, state: AgentState) -> bool:
        """The last signed authorization's end has passed (by ``judged_now``)."""
        expires = (state.authorization or {}).get("expiresAt")
        if expires is None:
            return False
        return dt.datetime.fromisoformat(str(expires)) <= self.judged_now(state)

    def allows_users(self, state: AgentState) -> bool:
        """``may_add_users`` for ``state``, recording nothing (for 'status')."""
        now = self.judged_now(state)
        if state.reservation.authorization_code is not None:
            return True  # specific license reservation: what it grants is checked per tag
        if state.registration == "registered":
            return not self.authorization_expired(state)
        return now < self.evaluation_ends(state)

    async def deregister(self) -> AgentState:
        """Leave the server. Export keys held go back to the server's pool; the features
        stay enabled here and SmartLicenseExportControlNotAllowed is raised."""
        _, answer = await self.signed_request("deregister", wire.NoParameters(), wire.Deregistered)
        return self._forget_registration(answer.released_export_features, answer.deregistered_at)

    def deregister_locally(self) -> AgentState:
        """When the server cannot be reached: the product must then be removed there by hand
        (which releases its export keys there)."""
        self._registered()
        return self._forget_registration(None, None)

    def _forget_registration(
        self, released: list[str] | None, signed_at: dt.datetime | None
    ) -> AgentState:
        """``released``: the features whose keys the server released (None: deregistered
        here only); ``signed_at``: when the server says it deregistered the product. The
        server holds no key of this product any more either way, so every key left here is
        marked released, under the alarm."""
        with self.dir.locked():
            state = self.state
            if signed_at is not None:
                state.time_seen.see(signed_at)
            unheld = sorted(set(released or []) - {key.feature for key in state.export.keys})
            if unheld:
                # Granted there, never installed here (the grant's answer was lost).
                log.info("agent.export_released_unheld", features=unheld)
            alarm = self._export_alarm(state, "deregistered")
            self._clear_registration(state)
            self.save(state)
            self.dir.key_file.unlink(missing_ok=True)
        self.announce(alarm)
        return state

    @staticmethod
    def _clear_registration(state: AgentState) -> None:
        state.export.pending = []
        state.registration = "deregistered"
        state.product_instance_id = None
        state.virtual_account = None
        state.certificate = None
        state.certificate_expires_at = None
        state.renew_registration_after = None
        state.authorization = None
        state.export_controlled = False
