"""Providers' event webhooks: one module per provider verifies and normalises its reports onto mail.feedback."""
