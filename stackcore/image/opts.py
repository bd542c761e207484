"""Configuration of the image family.

``[image] stores`` names the image stores this cloud uses (entry points of
``stackcore.image.stores``); each store's options are in its own group ``[image_store_<name>]``::

    [image]
    stores = file, web
    default_store = file

    [image_store_file]
    datadir = /srv/images
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

#: Glance's default ``image_size_cap`` (1 TiB).
DEFAULT_SIZE_CAP = 1024**4

IMAGE_OPTS = [
    cfg.ListOpt("stores", default=["file"],
                help="Image stores this cloud uses: entry point names in "
                "stackcore.image.stores. Each one's options are in [image_store_<name>]."),
    cfg.StrOpt("default_store", default="file",
               help="Store uploads go to when the caller names none; one of [image] stores."),
    cfg.IntOpt("image_size_cap", default=DEFAULT_SIZE_CAP, min=1,
               help="Largest image an upload may store, in bytes; a larger upload is refused "
               "as soon as it crosses it, with nothing kept."),
    cfg.IntOpt("interrupted_upload_timeout", default=300, min=10,
               help="Seconds without progress after which an upload left 'saving' by a "
               "process on another host is presumed dead: the next start-up marks the image "
               "'killed' (with a fault) and removes its partial data. Uploads of this host "
               "are checked for certain (is their process alive?), without waiting. A running "
               "upload reports progress every quarter of this."),
]


CACHE_OPTS = [
    cfg.StrOpt("directory", default="",
               help="Directory of a compute host's image cache (the images its servers boot "
               "from, fetched once from their store). Empty: <state_path>/image-cache/<host>."),
    cfg.IntOpt("max_size_mb", default=10240, min=0,
               help="Size the image cache is cleaned down to (least recently used images "
               "first, never one a server on the host uses), in MiB; 0: never cleaned."),
    cfg.IntOpt("min_age", default=600, min=0,
               help="Seconds an image stays in the cache after its last use before cleaning "
               "may remove it."),
]


def store_group(name: str) -> str:
    """The config group of store ``name``."""
    return f"image_store_{name}"


def list_opts() -> list[tuple[str, Any]]:
    from stackcore.image import url_filter

    return [("image", IMAGE_OPTS), ("image_cache", CACHE_OPTS),
            (url_filter.GROUP, url_filter.list_opts())]


def plugin_opts() -> list[tuple[str, Any]]:
    """The core stores' options, for the sample config."""
    from stackcore.image.stores.file import FileStore
    from stackcore.image.stores.web import WebStore

    return [(store_group("file"), FileStore.get_store_options()),
            (store_group("web"), WebStore.get_store_options())]
