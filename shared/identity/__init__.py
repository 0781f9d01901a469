"""ACS identities: users, and the access tokens they join calls with."""
