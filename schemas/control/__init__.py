"""The control plane the gateway writes and the dispatchers read: each provider type's settings, the provider
registry's entries and the secrets in them, and the settings changed at runtime. Not part of the contract: outside
producers need none of it."""
