"""Event bus, outbox dispatcher and outgoing webhooks."""
