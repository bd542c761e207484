"""Volume, snapshot and attachment states (Cinder's names).

Invariant kept by the manager: the transient states (:data:`TRANSIENT`) exist only while a
manager is working on the resource; every failure path and every restart of the volume service
moves the resource out of them.
"""

import enum


class VolumeStatus(enum.StrEnum):
    CREATING = "creating"
    DOWNLOADING = "downloading"
    AVAILABLE = "available"
    ATTACHING = "attaching"
    IN_USE = "in-use"
    DETACHING = "detaching"
    EXTENDING = "extending"
    UPLOADING = "uploading"
    DELETING = "deleting"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"
    ERROR_EXTENDING = "error_extending"
    DELETED = "deleted"


class SnapshotStatus(enum.StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    DELETING = "deleting"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"
    DELETED = "deleted"


class AttachStatus(enum.StrEnum):
    ATTACHING = "attaching"
    ATTACHED = "attached"
    DETACHING = "detaching"
    DETACHED = "detached"
    ERROR = "error_attaching"


TRANSIENT = frozenset({
    VolumeStatus.CREATING, VolumeStatus.DOWNLOADING, VolumeStatus.ATTACHING,
    VolumeStatus.DETACHING, VolumeStatus.EXTENDING, VolumeStatus.UPLOADING,
    VolumeStatus.DELETING,
})
