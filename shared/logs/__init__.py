"""Operation and attendance logs in Azure Monitor's shapes, written in the background."""
