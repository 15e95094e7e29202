"""Export-controlled features, the product's side (the reference's
``license smart export request|return local <feature>`` and ``license smart export cancel``).

A registered product asks the server for a feature; the answer carries an export
authorization key signed by the server, which is verified here (signature by the pinned
server certificate, this product, this feature) before it is stored: the feature is then
enabled. A request or return that fails for a reason that may pass (server away, no key
free, account not allowed yet) stays pending and is retried with a doubling, jittered
wait (``satellite_protocol.backoff``) by ``satellite-agent run`` until it succeeds or
``cancel`` stops it. A request that can never succeed (unknown feature, a registration
that does not allow export-controlled features) is not retried.

In evaluation mode export-controlled features are unavailable: a request is refused here,
without asking the server. A product under specific license reservation gets them from its
installed authorization code instead: an export key license reserved for it enables the
feature the catalog names for that license.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

import msgspec
import structlog

from satellite_agent.client import Agent, AgentError, RequestRefused, ServerUnreachable
from satellite_agent.reservation import Reservations
from satellite_agent.state import AgentState, ExportKey, PendingExport
from satellite_protocol import device as wire
from satellite_protocol.backoff import Backoff
from satellite_protocol.catalog import Catalog, parse_catalog, shipped_catalog_path

log = structlog.get_logger("satellite.agent")

FIRST_RETRY = dt.timedelta(seconds=30)
LONGEST_RETRY = dt.timedelta(hours=1)
# Refusals that no retry can change (for this registration): not retried.
FINAL_REFUSALS = (
    ":unknown-export-feature",
    ":export-registration-not-allowed",
    ":invalid-input",
    ":product-ended",
    ":registration-expired",
    ":bad-signature",
)


class ExportUnavailable(AgentError):
    """Export-controlled features are not available to this product as it is now."""


def product_catalog() -> Catalog:
    """What the product knows of licenses: the catalog shipped with satellite (which export
    key license enables which feature)."""
    path = shipped_catalog_path()
    return parse_catalog(path.read_bytes(), str(path))


def _final(error: AgentError) -> bool:
    if isinstance(error, RequestRefused):
        kind = str(error.problem.get("type", ""))
        return kind.endswith(FINAL_REFUSALS)
    return not isinstance(error, ServerUnreachable)


class ExportControl:
    """The export-control commands of one product (an ``Agent``)."""

    def __init__(
        self,
        agent: Agent,
        catalog: Catalog | None = None,
        *,
        first_retry: dt.timedelta = FIRST_RETRY,
        longest_retry: dt.timedelta = LONGEST_RETRY,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._agent = agent
        self._catalog = catalog or product_catalog()
        self._backoff = Backoff(
            first_retry.total_seconds(), longest_retry.total_seconds(), jitter=jitter
        )

    # --- what is enabled ---------------------------------------------------------------------

    def features(self, state: AgentState | None = None) -> dict[str, str]:
        """Enabled export-controlled features and what enables each: "export key",
        "export key (released: alarm)" or "reservation"."""
        state = state or self._agent.state
        enabled = {
            key.feature: "export key (released: alarm)" if key.released else "export key"
            for key in state.export.keys
        }
        for tag in Reservations(self._agent.dir.path).authorized(state):
            entry = self._catalog.get(tag)
            if entry is not None and entry.export_feature:
                enabled[entry.export_feature] = "reservation"
        return enabled

    def enabled(self, feature: str) -> bool:
        return feature in self.features()

    def availability(self, state: AgentState | None = None) -> str | None:
        """None when this product may ask for export-controlled features; else why not."""
        state = state or self._agent.state
        if state.reservation.enabled:
            return (
                "this product uses specific license reservation: export-controlled features "
                "come with an authorization code that reserves their export key license"
            )
        if state.registration == "unregistered":
            return (
                "export-controlled features are not available in evaluation mode: register "
                "with a token that allows export-controlled features first"
            )
        if state.registration != "registered":
            return (
                f"this product is not registered ({state.registration.replace('_', ' ')}): "
                "register with a token that allows export-controlled features first"
            )
        return None

    # --- commands ----------------------------------------------------------------------------

    def _require_available(self, state: AgentState) -> None:
        reason = self.availability(state)
        if reason is not None:
            raise ExportUnavailable(reason)

    def install_key(self, feature: str, granted: wire.ExportGranted) -> ExportKey:
        """Verify the server's export key for ``feature`` and store it: the feature is
        enabled. Refused (nothing changed) unless the pinned server certificate signed it,
        for this product and this feature."""
        with self._agent.dir.locked():
            return self._install_key(feature, granted)

    def _install_key(self, feature: str, granted: wire.ExportGranted) -> ExportKey:
        state = self._agent.state
        try:
            header, payload = self._agent.verify_server_signed(granted.key)
        except AgentError as exc:
            raise AgentError(f"export key refused: {exc}; nothing changed") from exc
        if header.get("typ") != wire.EXPORT_KEY_TYPE:
            raise AgentError("export key refused: it is not an export key; nothing changed")
        try:
            claims = msgspec.json.decode(payload, type=wire.ExportKeyClaims)
        except msgspec.MsgspecError as exc:
            raise AgentError(f"export key refused: {exc}; nothing changed") from exc
        identity = state.identity
        udi = (identity.pid, identity.serial_number, identity.uuid)
        if claims.product_instance_id != state.product_instance_id or udi != (
            claims.udi.udi_pid,
            claims.udi.udi_serial,
            claims.udi.udi_uuid,
        ):
            raise AgentError(
                "export key refused: it was issued to another product; nothing changed"
            )
        if claims.feature != feature:
            raise AgentError(
                f"export key refused: it enables {claims.feature!r}, not {feature!r}; "
                "nothing changed"
            )
        key = ExportKey(
            feature=feature,
            tag=claims.tag,
            display_name=granted.display_name,
            key_id=claims.key_id,
            key=granted.key,
            granted_at=granted.granted_at,
        )
        state.export.keys = [k for k in state.export.keys if k.feature != feature] + [key]
        state.export.pending = [p for p in state.export.pending if p.feature != feature]
        state.time_seen.see(claims.issued_at)  # the server's signed time
        self._settle_alarms(state)
        self._agent.save(state)
        log.info("agent.export_enabled", feature=feature, key_id=key.key_id)
        return key

    @staticmethod
    def _settle_alarms(state: AgentState) -> None:
        """An alarm stays while one of its features is enabled by a released key."""
        released = {key.feature for key in state.export.keys if key.released}
        state.export.alarms = [
            alarm for alarm in state.export.alarms if released.intersection(alarm.features)
        ]

    async def _send(self, pending: PendingExport) -> None:
        """One attempt; raises what refused it."""
        request = wire.ExportRequest(feature=pending.feature)
        if pending.action == "request":
            _, granted = await self._agent.signed_request(
                "export/request", request, wire.ExportGranted
            )
            self.install_key(pending.feature, granted)
        else:
            await self._agent.signed_request("export/return", request, wire.ExportReturned)

            def returned(state: AgentState) -> None:
                state.export.keys = [k for k in state.export.keys if k.feature != pending.feature]
                state.export.pending = [
                    p
                    for p in state.export.pending
                    if (p.action, p.feature) != ("return", pending.feature)
                ]
                self._settle_alarms(state)

            self._agent.update(returned)
            log.info("agent.export_returned", feature=pending.feature)

    def _record_failure(self, pending: PendingExport, error: AgentError, *, first: bool) -> bool:
        """Save the failed attempt: rescheduled (True) or, when it can never succeed,
        dropped (False). A retry (``first`` False) is rescheduled only while that very
        entry is still pending: a 'cancel' (or a newer request) made while it was on its
        way stands."""
        final = _final(error)

        def change(state: AgentState) -> bool:
            same = (pending.action, pending.feature, pending.since)
            still = any((p.action, p.feature, p.since) == same for p in state.export.pending)
            if not first and not still:
                return False
            others = [p for p in state.export.pending if p.feature != pending.feature]
            if not final:
                pending.attempts += 1
                pending.last_error = str(error)
                pending.next_attempt = self._agent.now() + dt.timedelta(
                    seconds=self._backoff.wait(pending.attempts)
                )
                others.append(pending)
            state.export.pending = others
            return not final

        rescheduled = self._agent.update(change)
        log.warning(
            "agent.export_failed",
            action=pending.action,
            feature=pending.feature,
            error=str(error),
            retry_at=pending.next_attempt.isoformat() if rescheduled else None,
        )
        return rescheduled

    async def _attempt(self, pending: PendingExport) -> None:
        try:
            await self._send(pending)
        except AgentError as exc:
            if self._record_failure(pending, exc, first=True):
                raise AgentError(
                    f"{exc}; the {pending.action} stays pending and is retried automatically "
                    "('satellite-agent run') until it succeeds or 'license smart export cancel'"
                ) from exc
            raise

    async def request(self, feature: str) -> ExportKey:
        """``license smart export request local <feature>``."""
        state = self._agent.state
        self._require_available(state)
        now = self._agent.now()
        await self._attempt(
            PendingExport(action="request", feature=feature, since=now, next_attempt=now)
        )
        return next(k for k in self._agent.state.export.keys if k.feature == feature)

    async def give_back(self, feature: str) -> None:
        """``license smart export return local <feature>``: the license goes back to the
        server and the key is removed from this product."""
        with self._agent.dir.locked():
            state = self._agent.state
            held = [k for k in state.export.keys if k.feature == feature]
            if not held:
                raise AgentError(f"this product holds no export key for {feature!r}")
            if state.registration != "registered":
                if not all(k.released for k in held):
                    raise AgentError(
                        f"the export key for {feature!r} is still counted on the server and "
                        f"this product is not registered ({state.registration.replace('_', ' ')}"
                        "): register again to return it; the key stays"
                    )
                # The server released it already (deregistered, removed, expired): only the
                # key goes.
                state.export.keys = [k for k in state.export.keys if k.feature != feature]
                self._settle_alarms(state)
                self._agent.save(state)
                return
        now = self._agent.now()
        await self._attempt(
            PendingExport(action="return", feature=feature, since=now, next_attempt=now)
        )

    def cancel(self) -> list[PendingExport]:
        """``license smart export cancel``: stop retrying the pending requests and end the
        pending returns (their keys stay on the product); what was pending."""
        with self._agent.dir.locked():
            state = self._agent.state
            cancelled = state.export.pending
            if not cancelled:
                raise AgentError("no export request or return is pending")
            state.export.pending = []
            self._agent.save(state)
        log.info("agent.export_cancelled", pending=[p.feature for p in cancelled])
        return cancelled

    # --- the runner's duty -------------------------------------------------------------------

    def next_due(self, state: AgentState | None = None) -> dt.datetime | None:
        state = state or self._agent.state
        return min((p.next_attempt for p in state.export.pending), default=None)

    async def retry_due(self) -> list[str]:
        """Retry each pending request or return that is due; what succeeded."""
        done = []
        now = self._agent.now()
        for pending in list(self._agent.state.export.pending):
            if pending.next_attempt > now:
                continue
            try:
                await self._send(pending)
            except AgentError as exc:
                self._record_failure(pending, exc, first=False)
                continue
            done.append(f"export {pending.action} {pending.feature}")
        return done
