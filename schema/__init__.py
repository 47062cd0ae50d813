"""GraphQL types, split by domain."""
