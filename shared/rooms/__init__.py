"""Rooms and their rosters: the model, the use cases, the store, and the changes others follow."""
