"""Inbound webhook sources, one module each, found by `backends.inbound.sources`."""
