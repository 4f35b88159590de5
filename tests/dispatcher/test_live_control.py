"""A running Dispatcher with its FleetHealth follows the provider registry and the configurations on the real
broker: providers added, replaced, disabled and removed, the retry ladder, breaker threshold and rate limits
changed, and bad records ignored, all without a restart. Mails go to the sandbox over real HTTP."""
import asyncio
import random
import time
import uuid
from dataclasses import dataclass

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import Fleet
from cryptography.fernet import Fernet
from sandbox_client import Sandbox

from dispatcher.delivery import Dispatcher
from dispatcher.jobs import Source
from dispatcher.ledger import SENDING
from dispatcher.live_settings import LiveSettings
from dispatcher.provider_pool import ProviderPool
from dispatcher.ratelimit import RateLimits
from dispatcher.sender import BoundedSender
from providers.config import load_providers
from schemas import codec, topics
from schemas.control.configurations import BREAKERS, RATE_LIMITS, RETRY_LADDER, ConfigurationRecord
from schemas.control.provider_entries import ProviderEntry
from schemas.control.secrets import SecretBox
from schemas.kafka.publishing import Output
from schemas.kafka.replica import TopicReplica

KEY = Fernet.generate_key().decode()
DELAYS = (0.3, 0.6)


@dataclass
class Worker:
    fleet: Fleet
    dispatcher: Dispatcher
    pool: ProviderPool
    settings: LiveSettings
    limits: RateLimits
    registry: TopicReplica
    configurations: TopicReplica

    def write(self, replica: TopicReplica, key: str, value: bytes) -> None:
        """Publish a control record and return once this worker has applied it (the replica's read barrier)."""
        self.fleet.run(self.fleet.publisher.publish([Output(replica.topic, key, value)]))
        self.fleet.run(replica.caught_up())

    def provider(self, entry: ProviderEntry) -> None:
        self.write(self.registry, entry.id, entry.encode())

    def configure(self, config_id: str, value: dict, removed: bool = False) -> None:
        record = ConfigurationRecord(config_id, value, removed, int(time.time() * 1000))
        self.write(self.configurations, config_id, record.encode())

    def send(self) -> list[dict]:
        """Handle one new mail; its events."""
        outputs = self.fleet.run(self.dispatcher.handle(request(), None, Source(topics.REQUESTS, 0, 1, 0)))
        return [codec.decode(o.value)[1] for o in outputs if o.topic == topics.EVENTS]


def request(mail_id: str | None = None) -> bytes:
    mail_id = mail_id or uuid.uuid4().hex
    return codec.encode("mercury.MailRequest", {
        "id": mail_id, "sender": "alice@example.com", "recipients": ["bob@example.com"], "subject": f"s-{mail_id}",
        "content": "hello", "created_at": int(time.time() * 1000), "origin": "http"})


def fresh_topic(bootstrap: str, kind: str) -> str:
    name = f"test.{kind}.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(15)
    return name


def entry(provider_id: str, provider_type: str, sandbox: Sandbox, base_url: str | None = None) -> ProviderEntry:
    """An entry aimed at the sandbox's emulator of its type, with the sandbox key as an encrypted secret."""
    secret = {"mailgun": "api_key", "sendgrid": "api_key", "postmark": "server_token"}[provider_type]
    return ProviderEntry(provider_id, provider_type, settings={"base_url": base_url or sandbox.url(provider_type)},
                         secret_names=(secret,), secrets=SecretBox(KEY).seal({secret: "sandbox-key"}),
                         updated_at=int(time.time() * 1000))


@pytest.fixture
def worker(fleet: Fleet, sandbox: Sandbox) -> Worker:
    """A worker whose environment names only SendGrid, with breakers that open after 100 failures."""
    env = {**sandbox.env(), "MERCURY_PROVIDERS": "sendgrid", "MERCURY_PROVIDER_READ_TIMEOUT": "2"}
    services = load_providers(env)
    health = fleet.health([s.name for s in services], failures=100, recovery_s=30)
    limits = RateLimits({}, health.fleet_size)
    dispatcher = Dispatcher(services, health, fleet.ledger(health.instance), limits, BoundedSender(4), DELAYS,
                            True, "test-worker", random.Random(7))
    pool = ProviderPool(dispatcher, health, env, SecretBox(KEY))
    environment = {RETRY_LADDER: {"delays_s": list(DELAYS)}, BREAKERS: {"failures": 100, "recovery_s": 30.0},
                   RATE_LIMITS: {}}
    settings = LiveSettings(environment, len(DELAYS), dispatcher, health, limits)
    replicas = []
    for kind, apply in (("providers", pool.apply), ("configurations", settings.apply)):
        replica = TopicReplica(fleet.bootstrap, fresh_topic(fleet.bootstrap, kind), health.instance, apply,
                               fleet.publisher.publish)
        fleet.replicas.append(replica)
        fleet.run(replica.caught_up())
        replicas.append(replica)
    return Worker(fleet, dispatcher, pool, settings, limits, *replicas)


def sent_by(events: list[dict]) -> str:
    assert events[-1]["event"] == "sent", events
    return events[-1]["provider"]


def test_a_provider_is_added_and_an_environment_one_disabled_without_restart(worker: Worker,
                                                                             sandbox: Sandbox) -> None:
    worker.provider(entry("mailgun-eu", "mailgun", sandbox))
    worker.provider(ProviderEntry("sendgrid", "sendgrid", enabled=False, updated_at=1))

    events = worker.send()

    assert sent_by(events) == "mailgun-eu"
    assert [s.name for s in worker.dispatcher.services()] == ["mailgun-eu"]
    assert worker.dispatcher.health.states()["mailgun-eu"] == "closed"
    assert len(sandbox.messages("mailgun")) == 1 and not sandbox.messages("sendgrid")


def test_a_replaced_provider_finishes_its_send_in_flight_on_the_old_adapter(worker: Worker, sandbox: Sandbox) -> None:
    worker.provider(entry("primary", "mailgun", sandbox))
    worker.provider(ProviderEntry("sendgrid", "sendgrid", enabled=False, updated_at=1))
    sandbox.set_faults("mailgun", latency_ms=1000)
    mail_id = uuid.uuid4().hex

    async def replace_while_sending() -> list[Output]:
        sending = asyncio.ensure_future(worker.dispatcher.handle(request(mail_id), None,
                                                                 Source(topics.REQUESTS, 0, 1, 0)))
        while (found := worker.dispatcher._ledger.lookup(mail_id)) is None or found.state != SENDING:
            await asyncio.sleep(0.01)
        replacement = entry("primary", "postmark", sandbox)
        await worker.fleet.publisher.publish([Output(worker.registry.topic, "primary", replacement.encode())])
        await worker.registry.caught_up()
        return await sending

    outputs = worker.fleet.run(replace_while_sending())

    first = [codec.decode(o.value)[1] for o in outputs if o.topic == topics.EVENTS]
    assert sent_by(first) == "primary"
    assert [m["subject"] for m in sandbox.messages("mailgun")] == [f"s-{mail_id}"]
    assert sent_by(worker.send()) == "primary"
    assert len(sandbox.messages("postmark")) == 1, "the next mail goes through the new adapter"


def test_a_removed_provider_sends_no_more_and_a_bad_record_changes_nothing(worker: Worker, sandbox: Sandbox) -> None:
    worker.provider(entry("postmark-1", "postmark", sandbox))
    worker.provider(ProviderEntry("sendgrid", "sendgrid", removed=True, enabled=False, updated_at=1))
    worker.provider(entry("postmark-1", "postmark", sandbox, base_url="not a url"))
    worker.write(worker.registry, "postmark-1", b"\x00garbage")
    worker.write(worker.registry, "sendgrid", ProviderEntry("sendgrid", "postal", updated_at=2).encode())

    assert [s.name for s in worker.dispatcher.services()] == ["postmark-1"]
    assert sent_by(worker.send()) == "postmark-1"

    worker.provider(ProviderEntry("postmark-1", "postmark", removed=True, enabled=False, updated_at=3))
    worker.provider(entry("sendgrid", "sendgrid", sandbox))

    assert sent_by(worker.send()) == "sendgrid"
    assert [s.name for s in worker.dispatcher.services()] == ["sendgrid"]


def test_a_mail_waits_on_its_level_while_no_provider_is_enabled(worker: Worker) -> None:
    worker.provider(ProviderEntry("sendgrid", "sendgrid", enabled=False, updated_at=1))

    events = worker.send()

    assert [e["event"] for e in events] == ["retry_scheduled"], "no provider is no reason to dead-letter a mail"


def test_the_retry_ladder_changes_without_restart_and_a_longer_one_is_refused(worker: Worker,
                                                                              sandbox: Sandbox) -> None:
    sandbox.set_faults("sendgrid", error_rate=1, status=503)
    worker.configure(RETRY_LADDER, {"delays_s": [7]})
    worker.configure(RETRY_LADDER, {"delays_s": [1, 2, 3]})

    events = worker.send()

    [scheduled] = [e for e in events if e["event"] == "retry_scheduled"]
    assert '"delay_s":7.0' in scheduled["blob"] and '"level":0' in scheduled["blob"]
    assert worker.settings.value(RETRY_LADDER) == {"delays_s": [7.0]}

    worker.configure(RETRY_LADDER, {}, removed=True)
    assert worker.settings.value(RETRY_LADDER) == {"delays_s": list(DELAYS)}


def test_a_lower_breaker_threshold_opens_the_breaker_at_once(worker: Worker, sandbox: Sandbox) -> None:
    sandbox.set_faults("sendgrid", down=True)
    worker.configure(BREAKERS, {"failures": 1, "recovery_s": 30})

    worker.send()

    assert worker.dispatcher.health.states()["sendgrid"] == "open"


def test_rate_limits_change_without_restart(worker: Worker) -> None:
    assert worker.limits.try_take("sendgrid") == 0

    worker.configure(RATE_LIMITS, {"sendgrid": 0.001})

    assert worker.limits.try_take("sendgrid") == 0
    assert worker.limits.try_take("sendgrid") > 0
    worker.configure(RATE_LIMITS, {}, removed=True)
    assert worker.limits.try_take("sendgrid") == 0
