"""The image family: the images servers boot from and volumes are copied from and to.

Today an image is a registered local file (:mod:`stackcore.image.models`); the image service
with store drivers grows here.
"""

from stackcore.image.format import Inspected, inspect

__all__ = ["Inspected", "inspect"]
