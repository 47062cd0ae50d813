"""CRM and commerce clients, inbound webhook adapters and fakes of those APIs."""
