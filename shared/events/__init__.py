"""Outgoing events: the event model, the transactional outbox, its dispatcher to Event Grid, replays."""
