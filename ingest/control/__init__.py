"""The control plane's APIs: providers and configurations, stored on compacted control topics."""
