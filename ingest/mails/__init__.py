"""The mail routes: accept one mail or a batch, read mails and their events."""
