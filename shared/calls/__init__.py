"""Room calls: the model, the use cases, the store, PSTN, and what a call change produces."""
