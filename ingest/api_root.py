"""The gateway's versioned root: every route, and every tool that calls the API, builds its paths on it."""

API = "/api/v1.0"
