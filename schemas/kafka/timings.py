"""How long Mercury's Kafka clients wait before they act, from the environment: the two settings that decide how
soon a lone mail moves, and how many requests an idle stack makes of its broker.

A producer gathers records for `linger_ms` before it sends them: every acknowledged write of a mail (the
gateway's, then the ledger's before and after each send) waits that long once more, while a busy process fills
its batches anyway. The dispatchers' mail consumers may wait `fetch_wait_ms` for data: Apache Kafka answers as
soon as data is there, so the wait only bounds an idle poll; the local broker holds a fetch over several
partitions for the whole wait, so there it is how long a mail can sit unread. (Shared-state replicas wait
schemas.kafka.replica.STATE_FETCH_WAIT_MS, the analytics sink MERCURY_SINK_FETCH_WAIT_MS: neither is on a mail's path.)

The local broker lists every batch a partition ever received on each fetch and answers nothing when the listing
outlasts the wait (deploy/broker.py): at 25 ms a partition stops being read after some 25,000-50,000 batches.
A local stack kept under load for hours needs a longer wait; production brokers have no such limit.
"""
from collections.abc import Mapping
from dataclasses import dataclass

LINGER_ENV = "MERCURY_KAFKA_LINGER_MS"
FETCH_WAIT_ENV = "MERCURY_KAFKA_FETCH_WAIT_MS"


@dataclass(frozen=True)
class KafkaTimings:
    # Measured on the local stack (lone mail, accept -> sent p50): linger 10 / fetch wait 1,500 (Faust's) 232 ms;
    # 10 / 10 39 ms; 1 / 25 17 ms; 5 / 25 23 ms; 5 / 50 32 ms. The local broker's CPU per mail grows as either
    # shrinks (more batches, more fetches): a 1 ms linger cost it half again as much as 5 ms under load.
    linger_ms: int = 5
    fetch_wait_ms: int = 25

    def __post_init__(self) -> None:
        if not 0 <= self.linger_ms <= 1_000:
            raise ValueError(f"{LINGER_ENV} must be 0 to 1000")
        if not 1 <= self.fetch_wait_ms <= 10_000:
            raise ValueError(f"{FETCH_WAIT_ENV} must be 1 to 10000")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "KafkaTimings":
        defaults = cls()
        return cls(linger_ms=int(env.get(LINGER_ENV, defaults.linger_ms)),
                   fetch_wait_ms=int(env.get(FETCH_WAIT_ENV, defaults.fetch_wait_ms)))
