"""The control plane of `localdev run`: reset, seeds, token minting, the instance description."""
