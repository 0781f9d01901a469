"""The console of `localdev run`: a live inspector and the actions it offers, served on loopback."""
