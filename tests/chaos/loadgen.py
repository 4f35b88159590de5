"""A steady stream of mails posted to the gateway from background threads, with every answer remembered.

The chaos cases count from what the gateway promised: a 202 is a mail the pipeline must deliver or
dead-letter; anything else (503 while the broker is down, no answer at all) must never be a 202.
"""
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

POST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Answer:
    """One POST: when it went out and came back (wall clock, seconds), the status (None: no HTTP answer)."""

    n: int
    sent_at: float
    answered_at: float
    status: int | None
    mail_id: str | None
    detail: str


class LoadGenerator:
    """Posts `rate` mails a second on a fixed schedule; `senders` threads keep slow answers from
    stretching the schedule. Use as a context manager, or start() and stop()."""

    def __init__(self, api: str, api_key: str, label: str, rate: float = 25.0, senders: int = 8) -> None:
        self.api = api
        self._api_key = api_key
        self.label = label
        self.rate = rate
        self._senders = senders
        self._slots = itertools.count()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._started_at = 0.0

    def start(self) -> "LoadGenerator":
        self._started_at = time.monotonic()
        self._threads = [threading.Thread(target=self._send_loop, name=f"load-{self.label}-{i}", daemon=True)
                         for i in range(self._senders)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop posting and wait for the requests in flight, so every answer is known."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(POST_TIMEOUT_S + 5)

    def __enter__(self) -> "LoadGenerator":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def answers(self) -> list[Answer]:
        with self._lock:
            return sorted(self._answers, key=lambda a: a.n)

    def accepted(self, where: Callable[[Answer], bool] = lambda _answer: True) -> list[str]:
        """Ids of the mails the gateway answered 202 for, among the answers `where` selects."""
        return [a.mail_id for a in self.answers() if a.status == 202 and a.mail_id and where(a)]

    def _send_loop(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self._api_key}"
        while not self._stopping.is_set():
            n = next(self._slots)
            delay = self._started_at + n / self.rate - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                return
            answer = self._post(session, n)
            with self._lock:
                self._answers.append(answer)

    def _post(self, session: requests.Session, n: int) -> Answer:
        body = {"sender": "alice@example.com", "recipients": "bob@example.com",
                "subject": f"chaos {self.label} {n}", "content": f"chaos load {self.label} mail {n}"}
        sent_at = time.time()
        try:
            response = session.post(f"{self.api}/mails/", json=body, timeout=POST_TIMEOUT_S)
        except requests.RequestException as err:
            return Answer(n, sent_at, time.time(), None, None, repr(err))
        mail_id = response.json().get("id") if response.status_code == 202 else None
        return Answer(n, sent_at, time.time(), response.status_code, mail_id, response.text[:200])
