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
    #: a backup is reading the volume (back to its previous status afterwards)
    BACKING_UP = "backing-up"
    #: a backup is being written into the volume
    RESTORING_BACKUP = "restoring-backup"
    #: an object already on the backend is being adopted (``cloud.volume.manage``)
    MANAGING = "managing"
    #: adopting it failed (the object is left as it was); only delete is allowed
    ERROR_MANAGING = "error_managing"
    #: its data is being copied to another backend (``cloud.volume.migrate``); back to
    #: ``available`` on the new backend, or on the old one with a fault if it failed
    MIGRATING = "migrating"
    #: its type is changing with a migration (``cloud.volume.retype``, on-demand)
    RETYPING = "retyping"
    #: a migration's second copy (never seen by users, not counted in quotas): the row that
    #: holds the capacity claim of the copy the volume is not on - the destination while the
    #: data is copied, the source once the volume has moved (until that copy is deleted)
    RESERVED = "reserved"


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


class BackupStatus(enum.StrEnum):
    """A volume backup's states (Cinder's). Transient: creating, restoring, deleting."""

    CREATING = "creating"
    AVAILABLE = "available"
    RESTORING = "restoring"
    DELETING = "deleting"
    ERROR = "error"
    DELETED = "deleted"


BACKUP_TRANSIENT = frozenset({BackupStatus.CREATING, BackupStatus.RESTORING,
                              BackupStatus.DELETING})


TRANSIENT = frozenset({
    VolumeStatus.CREATING, VolumeStatus.DOWNLOADING, VolumeStatus.ATTACHING,
    VolumeStatus.DETACHING, VolumeStatus.EXTENDING, VolumeStatus.UPLOADING,
    VolumeStatus.DELETING, VolumeStatus.BACKING_UP, VolumeStatus.RESTORING_BACKUP,
    VolumeStatus.MANAGING, VolumeStatus.MIGRATING, VolumeStatus.RETYPING,
})
