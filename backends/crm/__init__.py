"""CRM clients: a member's contact record (`Member.profile`)."""
