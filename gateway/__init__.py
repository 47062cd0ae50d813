"""The loyalty-gateway ASGI app, settings, CLI and job scheduler."""
