"""HTTP sessions for the gateway under test. Kept out of conftest.py: pytest loads a conftest under its own
module name, so a session set up there would not be the one test modules import."""
import uuid

import requests


def key_session(token: str) -> requests.Session:
    """Requests to a gateway with this API key."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


# Requests to the session stack's gateway, with the admin key the stack minted at start (set by its fixture).
gateway = requests.Session()


def new_key(api: str, session: requests.Session | None = None, **fields: object) -> dict:
    """Mint a key with the stack's key (or `session`'s); the answer, token included."""
    answer = (session or gateway).post(f"{api}/keys/", json=fields, timeout=10)
    assert answer.status_code == 201, answer.text
    return answer.json()


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"
