"""The image stores shipped with stackcore: ``file`` (a local or shared directory) and ``web``
(read-only HTTP(S)). Backend stores (``rbd``) live in ``stackcore_drivers``."""
