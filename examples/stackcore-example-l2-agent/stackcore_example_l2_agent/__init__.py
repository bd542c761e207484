"""An example third-party L2 agent for stackcore."""
