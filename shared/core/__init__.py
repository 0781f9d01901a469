"""Foundations every context uses: clocks, the error type, time formats, identifiers and RSA keys."""
