"""Memory: how much there is, what a render costs, which tier fits, and who may render now."""
