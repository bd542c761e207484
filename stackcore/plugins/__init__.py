"""Plugin loading (stevedore, loudly) and family contract verification."""

from stackcore.plugins.contract import Contract
from stackcore.plugins.loader import Discovered, Plugin, discover, load_one, load_ordered

__all__ = ["Contract", "Discovered", "Plugin", "discover", "load_one", "load_ordered"]
