"""Server states: what a server is (``VmState``) and what is being done to it (``TaskState``).

Invariant kept by the managers: a task state is set only while a manager is working on the
server; every failure path and every restart clears it. ``BUILDING`` is the only transient
vm_state and never survives a failure or a compute-service restart.
"""

import enum


class VmState(enum.StrEnum):
    BUILDING = "building"
    ACTIVE = "active"
    STOPPED = "stopped"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    RESCUED = "rescued"
    #: resized or migrated to its new host and running (or stopped) there, waiting for
    #: ``confirm_resize`` or ``revert_resize`` (Nova's status ``VERIFY_RESIZE``); both hosts
    #: keep their claims until then
    RESIZED = "resized"
    ERROR = "error"
    DELETED = "deleted"


class TaskState(enum.StrEnum):
    SCHEDULING = "scheduling"
    SPAWNING = "spawning"
    REBOOTING = "rebooting"
    REBOOTING_HARD = "rebooting_hard"
    POWERING_OFF = "powering-off"
    POWERING_ON = "powering-on"
    DELETING = "deleting"
    PAUSING = "pausing"
    UNPAUSING = "unpausing"
    SUSPENDING = "suspending"
    RESUMING = "resuming"
    IMAGE_SNAPSHOT = "image_snapshot"
    REBUILDING = "rebuilding"
    RESCUING = "rescuing"
    UNRESCUING = "unrescuing"
    #: resize / cold migrate (see stackcore.compute.migration): claims being made
    RESIZE_PREP = "resize_prep"
    #: the source host powers the instance off and sends its disks
    RESIZE_MIGRATING = "resize_migrating"
    #: the destination host builds the instance with the new flavor
    RESIZE_FINISH = "resize_finish"
    RESIZE_CONFIRMING = "resize_confirming"
    RESIZE_REVERTING = "resize_reverting"
    #: evacuation from a dead host (see stackcore.compute.evacuation): a host is being
    #: chosen, then the new host rebuilds the server there
    EVACUATING = "evacuating"
    #: live migration (see stackcore.compute.live_migration): a host is being chosen,
    #: then the guest moves while it runs and the source cleans up
    MIGRATING = "migrating"
