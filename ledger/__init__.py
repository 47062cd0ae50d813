"""The points domain: models, repository, service, pure rules and program config."""
