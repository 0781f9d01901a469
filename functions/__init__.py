"""Thin Azure Functions blueprints: parse the request, call one use case, map the result."""
