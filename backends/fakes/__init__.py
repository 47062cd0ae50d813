"""Fakes of the CRM and store APIs, served over real HTTP."""
