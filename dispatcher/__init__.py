"""Faust agents that deliver each mail through a healthy provider, fail over, retry on a ladder, dead-letter."""
