"""Records no gateway checked, published straight to mail.requests by an outside producer in the middle of
the steady load: each must end in mail.dead with a reason, and the normal mails around them must all be
delivered."""
import struct
import time
import uuid

from confluent_kafka import KafkaError, Producer

from schemas import codec, topics
from schemas.events import now_ms
from schemas.validation import MAX_MAIL_BYTES
from tests.chaos.accounting import dead_letters
from tests.chaos.harness import Chaos

WARM_S = 3.0
ROUNDS = 2
# Over the mail size limit, still under the broker's record size limit.
OVERSIZED_CONTENT_BYTES = MAX_MAIL_BYTES + 1
REQUEST = "mercury.MailRequest"


def request(mail_id: str, recipients: list[str] | None = None, content: str = "hello") -> dict:
    return {"id": mail_id, "sender": "alice@example.com", "recipients": recipients or ["bob@example.com"],
            "subject": f"chaos outside {mail_id}", "content": content, "created_at": now_ms(), "origin": "kafka"}


def malformed(tag: str) -> dict[str, bytes]:
    """Record values by key; the key is also the mail id of those that decode."""
    good = codec.encode(REQUEST, request(f"{tag}-template"))
    return {
        f"{tag}-garbage": b"\xde\xad\xbe\xef not a record at all",
        f"{tag}-wrong-magic": b"\x01" + good[1:],
        f"{tag}-unknown-schema": good[:1] + struct.pack(">I", 9999) + good[5:],
        f"{tag}-bad-address": codec.encode(REQUEST, request(f"{tag}-bad-address", ["not an address"])),
        f"{tag}-oversized": codec.encode(REQUEST, request(f"{tag}-oversized", content="x" * OVERSIZED_CONTENT_BYTES)),
    }


def publish(bootstrap: str, records: dict[str, bytes]) -> None:
    """Publish one record a second, as an outside confluent-kafka producer would; fail unless each was acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failures: list[KafkaError] = []
    for key, value in records.items():
        producer.produce(topics.REQUESTS, key=key, value=value,
                         on_delivery=lambda err, _msg: failures.append(err) if err else None)
        producer.poll(0)
        time.sleep(1)
    assert producer.flush(30) == 0 and not failures, f"outside records not acknowledged: {failures}"


def test_malformed_and_oversized_records_are_dead_lettered_while_the_load_is_delivered(
        chaos: Chaos) -> None:
    sent: dict[str, bytes] = {}
    with chaos.load("malformed") as load:
        for _ in range(ROUNDS):
            time.sleep(WARM_S)
            batch = malformed(f"chaos-{uuid.uuid4().hex[:8]}")
            publish(chaos.bootstrap, batch)
            sent.update(batch)
        time.sleep(WARM_S)
    chaos.settle(list(sent))
    letters = dead_letters(chaos.bootstrap)
    for key, letter in letters.items():
        if key in sent:
            print(f"chaos dead_letter key={key} outcome={letter['outcome']} reason={letter['reason'][:120]!r}")
    with_reason = [key for key in sent if letters.get(key, {}).get("reason")]
    result = chaos.finish("malformed_records", load.accepted(), malformed=len(sent),
                          malformed_dead_lettered=len(with_reason))
    chaos.assert_passed(result)
    missing = sorted(set(sent) - set(with_reason))
    assert not missing, f"not dead-lettered with a reason: {missing}"
