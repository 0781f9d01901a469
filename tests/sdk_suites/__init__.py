"""Microsoft's own SDK test suites, run live against the local stack."""
