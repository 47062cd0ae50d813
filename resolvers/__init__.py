"""Thin GraphQL resolvers and per-request DataLoaders."""
