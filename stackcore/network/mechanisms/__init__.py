"""The core's ML2 mechanism drivers (reference plugins without a backend): ``fake``,
``fake_tor`` and ``logger`` (:mod:`~stackcore.network.mechanisms.fake`)."""
