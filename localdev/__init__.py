"""Local-only tooling: serve the Functions app without Core Tools, run Azurite, make a dev TLS certificate."""
