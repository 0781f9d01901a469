"""Analytics benchmark: simulated 1M operation-log lines + 1M call events, report end to end vs DuckDB."""
