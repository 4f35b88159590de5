"""A local server that speaks each provider's real HTTP API, with fault injection over HTTP.

Run it with `python -m providers.sandbox`; see providers/README.md for its endpoints and faults.
"""
