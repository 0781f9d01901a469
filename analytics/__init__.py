"""Anteroom analytics: load Rooms operation logs and room-call events into pandas, transform, and report."""
