"""Helpers every context's tests share: the running stack (Azurite and the local host), clients and assertions."""
