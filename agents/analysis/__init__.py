"""Model analysis of trained policies: what they look at, how they act, how they react."""
