"""Call Automation on room calls: its use cases, callbacks, and their signatures."""
