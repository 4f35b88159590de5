"""HTTP sessions for the gateway under test. Kept out of conftest.py: pytest loads a conftest under its own
module name, so a session set up there would not be the one test modules import."""
import requests


def key_session(token: str) -> requests.Session:
    """Requests to a gateway with this API key."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


# Requests to the session stack's gateway, with the admin key the stack minted at start (set by its fixture).
gateway = requests.Session()
