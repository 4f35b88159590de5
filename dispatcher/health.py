"""Provider health shared by every worker: one breaker per provider whose state lives on a compacted topic.

Each worker counts its own consecutive failures; the worker that reaches the threshold (or meets an
auth/account failure) publishes `open`, and every worker applies it as soon as it reads it back. Once the
open time has passed, a worker *claims* the single probe by publishing `half_open` with itself as owner,
and sends only if the log, read back, names it as the winner: all workers apply records in the same
order with the same rules, so exactly one probe is out at a time across the fleet. The probe's result
closes or re-opens the breaker for everyone; a probe whose owner died expires after its lease.

A 429 publishes a throttle window instead (the provider is skipped, not penalised), and each worker
publishes a heartbeat so the fleet's size is known (rate limits are shared out across it).
"""
import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dispatcher.metrics import BREAKER_STATE, BREAKER_VALUES
from providers.errors import AmbiguousError, ProviderError, ProviderFailure, ThrottledError, TransientError
from schemas import codec, registry, topics
from schemas.events import now_ms
from schemas.kafka.publishing import Output
from schemas.vocabulary import HealthState

log = logging.getLogger("mercury.dispatcher.health")
SCHEMA = registry.PROVIDER_HEALTH
CLOSED, OPEN, HALF_OPEN, THROTTLED, ALIVE = (HealthState.CLOSED, HealthState.OPEN, HealthState.HALF_OPEN,
                                             HealthState.THROTTLED, HealthState.ALIVE)
CLAIM_WAIT_S = 1.0
HEARTBEAT_S = 2.0
DEFAULT_THROTTLE_S = 1.0
MAX_THROTTLE_S = 300.0

Publish = Callable[[list[Output]], Awaitable[None]]


@dataclass(frozen=True)
class ProviderState:
    state: str = CLOSED
    opened_at: int = 0
    probe_owner: str = ""
    probe_until: int = 0


@dataclass(frozen=True)
class Ticket:
    """Leave to send one mail to a provider; `probe` when it is the fleet's one half-open probe."""

    provider: str
    probe: bool = False


class FleetHealth:
    def __init__(self, providers: list[str], instance: str, failures: int, recovery_s: float, probe_lease_s: float,
                 publish: Publish, topic: str = topics.HEALTH) -> None:
        self.instance = instance
        self.topic = topic
        self._threshold = failures
        self._recovery_ms = int(recovery_s * 1000)
        self._lease_ms = int(probe_lease_s * 1000)
        self._publish = publish
        self._states: dict[str, ProviderState] = {}
        self._throttled_until: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._probing: set[str] = set()
        self._changed: dict[str, asyncio.Event] = {}
        # The latest records about providers this worker does not know (yet): a provider added later starts
        # from the fleet's view of it, not from closed.
        self._unknown: dict[str, dict[str, dict]] = {}
        self._heartbeats: dict[str, int] = {}
        self._background: set[asyncio.Task] = set()
        for name in providers:
            self.add_provider(name)

    def add_provider(self, name: str) -> None:
        """Learn a provider added at runtime (idempotent), in the state the fleet last published for it."""
        if name in self._states:
            return
        self._states[name] = ProviderState()
        self._throttled_until[name] = 0
        self._failures[name] = 0
        self._changed[name] = asyncio.Event()
        BREAKER_STATE.labels(name).set(BREAKER_VALUES[CLOSED])
        for record in self._unknown.pop(name, {}).values():
            self._apply_record(record)

    def set_thresholds(self, failures: int, recovery_s: float) -> None:
        """Breaker settings changed at runtime: failures counted so far meet the new threshold at the next one,
        and an open breaker's recovery time is measured from when it opened."""
        self._threshold = failures
        self._recovery_ms = int(recovery_s * 1000)

    def set_probe_lease(self, lease_s: float) -> None:
        """The bound of one send changed (an adapter's timeouts): probes claimed from now on use it."""
        self._lease_ms = int(lease_s * 1000)

    def release(self, ticket: Ticket) -> None:
        """A ticket that will not be used (its provider left the pool meanwhile): a probe hands its lease back."""
        if ticket.probe:
            self._probing.discard(ticket.provider)
            self._release_probe(ticket.provider)

    def states(self) -> dict[str, str]:
        return {name: s.state for name, s in self._states.items()}

    def fleet_size(self) -> int:
        """Workers heard from within three heartbeats, this one included."""
        horizon = now_ms() - int(3 * HEARTBEAT_S * 1000)
        return 1 + sum(1 for worker, at in self._heartbeats.items() if at >= horizon and worker != self.instance)

    async def admit(self, provider: str) -> Ticket | None:
        """Leave to send to `provider` now, or None; past the open time this claims the fleet's one probe."""
        now = now_ms()
        if self._throttled_until[provider] > now:
            return None
        state = self._states[provider]
        if state.state == CLOSED:
            return Ticket(provider)
        if provider in self._probing:
            return None
        if state.state == OPEN and now < state.opened_at + self._recovery_ms:
            return None
        if state.state == HALF_OPEN and state.probe_until >= now:
            return None
        return await self._claim_probe(provider, state.opened_at)

    def succeeded(self, ticket: Ticket) -> None:
        self._failures[ticket.provider] = 0
        if ticket.probe:
            self._probing.discard(ticket.provider)
            self._change(ticket.provider, CLOSED, reason="probe succeeded")

    def failed(self, ticket: Ticket, err: ProviderError) -> None:
        """Transient, ambiguous and provider-level failures count; a 429 throttles; anything else says nothing
        about the provider (a bad recipient), and a probe that ended that way hands its lease back."""
        provider = ticket.provider
        if ticket.probe:
            self._probing.discard(provider)
        if isinstance(err, ThrottledError):
            self._throttle(provider, err.retry_after)
            if ticket.probe:
                self._release_probe(provider)
            return
        if not isinstance(err, (TransientError, AmbiguousError, ProviderFailure)):
            if ticket.probe:
                self._release_probe(provider)
            return
        self._failures[provider] += 1
        opens = ticket.probe or isinstance(err, ProviderFailure) or self._failures[provider] >= self._threshold
        if opens and (ticket.probe or self._states[provider].state == CLOSED):
            self._change(provider, OPEN, opened_at=now_ms(), reason=f"{type(err).__name__}: {err.detail}"[:300])

    def apply(self, key: str, value: bytes) -> None:
        """Apply one record read back from the health topic; every worker runs the same rules in log order."""
        self._apply_record(codec.decode(value)[1])

    def _apply_record(self, record: dict) -> None:
        state = record["state"]
        if state == ALIVE:
            self._heartbeats[record["worker"]] = record["changed_at"]
            return
        provider = record["provider"]
        if provider not in self._states:
            self._unknown.setdefault(provider, {})[THROTTLED if state == THROTTLED else "state"] = record
            return
        if state == THROTTLED:
            self._throttled_until[provider] = max(self._throttled_until[provider], record["throttled_until"])
            return
        current = self._states[provider]
        if state == HALF_OPEN and not self._claim_wins(current, record):
            return
        new = ProviderState(state, record["opened_at"], record["probe_owner"], record["probe_until"])
        if new == current:
            return
        self._states[provider] = new
        if state != current.state:
            self._failures[provider] = 0
            BREAKER_STATE.labels(provider).set(BREAKER_VALUES[state])
            log.warning("provider_health", extra={
                "provider": provider, "state": state, "from": current.state, "by": record["worker"],
                "lag_ms": now_ms() - record["changed_at"], "reason": record["reason"]})
        self._changed[provider].set()
        self._changed[provider] = asyncio.Event()

    async def flush(self) -> None:
        """Wait for the changes still being published (on shutdown, so the fleet hears the last of them)."""
        if self._background:
            await asyncio.wait(list(self._background))

    async def heartbeats(self) -> None:
        """Tell the fleet this worker is alive, until cancelled."""
        while True:
            await self._send(self._record("", ALIVE), key=f"worker/{self.instance}")
            await asyncio.sleep(HEARTBEAT_S)

    @staticmethod
    def _claim_wins(current: ProviderState, claim: dict) -> bool:
        """A claim counts only for the open period it names, and only if no live lease of another is held."""
        if claim["opened_at"] != current.opened_at:
            return False
        if current.state == OPEN:
            return True
        return current.state == HALF_OPEN and (
            current.probe_owner == claim["worker"] or current.probe_until < claim["changed_at"])

    async def _claim_probe(self, provider: str, opened_at: int) -> Ticket | None:
        self._probing.add(provider)
        until = now_ms() + self._lease_ms
        claim = self._record(provider, HALF_OPEN, opened_at=opened_at, probe_owner=self.instance, probe_until=until,
                             reason="probe claimed")
        try:
            await asyncio.wait_for(self._wait_for_claim(provider, claim), CLAIM_WAIT_S)
        except Exception as err:  # a lost or late claim only means this worker does not probe
            log.warning("probe_claim_unconfirmed", extra={"provider": provider, "error": repr(err)})
        state = self._states[provider]
        if state == ProviderState(HALF_OPEN, opened_at, self.instance, until):
            log.info("probe_claimed", extra={"provider": provider, "until": until})
            return Ticket(provider, probe=True)
        self._probing.discard(provider)
        return None

    async def _wait_for_claim(self, provider: str, claim: dict) -> None:
        changed = self._changed[provider]
        await self._publish([self._output(claim, provider)])
        while self._states[provider].probe_until != claim["probe_until"] and not changed.is_set():
            await changed.wait()

    def _release_probe(self, provider: str) -> None:
        state = self._states[provider]
        if state.state == HALF_OPEN and state.probe_owner == self.instance:
            self._change(provider, HALF_OPEN, opened_at=state.opened_at, reason="probe said nothing about health")

    def _throttle(self, provider: str, retry_after: float | None) -> None:
        seconds = min(retry_after if retry_after and retry_after > 0 else DEFAULT_THROTTLE_S, MAX_THROTTLE_S)
        until = now_ms() + int(seconds * 1000)
        self._throttled_until[provider] = max(self._throttled_until[provider], until)
        log.info("provider_throttled", extra={"provider": provider, "seconds": round(seconds, 1)})
        self._spawn(self._send(self._record(provider, THROTTLED, throttled_until=until), key=f"{provider}/throttle"))

    def _change(self, provider: str, state: str, *, opened_at: int | None = None, reason: str) -> None:
        """Apply a change here at once (this worker stops sending now) and publish it for the others."""
        current = self._states[provider]
        record = self._record(provider, state, opened_at=current.opened_at if opened_at is None else opened_at,
                              reason=reason)
        self._apply_record(record)
        self._spawn(self._send(record, key=provider))

    async def _send(self, record: dict, key: str) -> None:
        await self._publish([self._output(record, key)])

    def _spawn(self, publishing: Awaitable[None]) -> None:
        """Health records are advice: publishing goes on in the background, and a failure is logged."""
        task = asyncio.ensure_future(publishing)
        self._background.add(task)
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("health_publish_failed", extra={"error": repr(task.exception())})

    def _record(self, provider: str, state: str, **fields: object) -> dict:
        return {"provider": provider, "state": state, "opened_at": 0, "probe_owner": "", "probe_until": 0,
                "throttled_until": 0, "worker": self.instance, "reason": "", "changed_at": now_ms(), **fields}

    def _output(self, record: dict, key: str) -> Output:
        return Output(self.topic, key, codec.encode(SCHEMA, record))
