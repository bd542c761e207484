"""Image stores on backends: ``rbd`` (Ceph)."""
