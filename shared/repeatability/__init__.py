"""Repeatable requests (Repeatability-Request-ID) and their stored answers."""
