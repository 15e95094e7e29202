"""The upstream answers a bundle: a registration request or a sync request, from a file
an operator carried in or from a satellite over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from satellite.domain.access import Principal
from sync import bundle
from sync.bundle import BundleError, RegistrationRequest, SyncRequest
from sync.spool import Incoming
from sync.upstream.base import NOT_A_REQUEST, Answered, log
from sync.upstream.exchange import Exchange
from sync.upstream.registration import UpstreamRegistration

REGISTRATION_MAX_BYTES = 64 * 1024  # a registration request is one line and a signature


class Answering(UpstreamRegistration, Exchange):
    async def answer(self, request: Path, principal: Principal | None) -> tuple[Answered, bytes]:
        """Answer a registration request or a sync request: what was done, and the answer.

        ``principal`` is the operator who carried the file in (disconnected mode), who must
        be allowed to change the satellite's account; None when the satellite sent it
        itself (its signature is its credential).
        """
        self._require_upstream()
        header = bundle.read_header(request)
        if isinstance(header, RegistrationRequest):
            answered, data = await self._register(request, header, principal)
        elif isinstance(header, SyncRequest):
            answered, data = await self._exchange(request, header, principal)
        else:
            raise BundleError(NOT_A_REQUEST)
        log.info(
            "sync.answered",
            kind=answered.kind,
            satellite=answered.satellite_id,
            sequence=answered.sequence,
            repeated=answered.repeated,
            **answered.counts,
        )
        return answered, data

    async def answer_stream(
        self,
        chunks: AsyncIterator[bytes],
        principal: Principal | None,
        only: type[RegistrationRequest | SyncRequest] | None = None,
    ) -> tuple[Answered, bytes]:
        """``answer`` for a request arriving over HTTP. Its header is read first: a
        registration request is small, and a sync request is taken in only from a
        satellite registered here (and, carried in by an operator, one they may change).
        ``only``: the one kind of request the endpoint takes."""
        self._require_upstream()
        incoming = Incoming(chunks)
        header = await incoming.header()
        if only is not None and not isinstance(header, only):
            raise BundleError(f"this endpoint takes a {only.__name__} bundle")
        limit = self._settings.sync.max_bundle_bytes
        if isinstance(header, RegistrationRequest):
            limit = REGISTRATION_MAX_BYTES
        elif isinstance(header, SyncRequest):
            await self._sender(header.satellite_id, principal)
        else:
            raise BundleError(NOT_A_REQUEST)
        with self.spool.files("request") as (path,):
            await incoming.save(path, limit)
            return await self.answer(path, principal)
