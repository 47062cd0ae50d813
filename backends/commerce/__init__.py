"""Store clients: a member's recent orders (`Member.orders`)."""
