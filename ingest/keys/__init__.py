"""API keys: the key model, the ring every gateway keeps, limits, authentication, and the keys routes."""
