"""Request authentication and throttling: ACS HMAC signatures and per-caller budgets."""
