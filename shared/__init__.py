"""Anteroom domain, storage and protocol code, importable without the Functions runtime."""
