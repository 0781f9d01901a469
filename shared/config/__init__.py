"""The service's settings, read from the environment and checked at start."""
