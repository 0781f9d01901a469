"""Azure Table storage: clients, transaction limits, fault mapping, batch writing and the lean transport."""
