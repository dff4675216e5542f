"""The shop's own signal: a parasignal ``Signal`` where Django's would be.

``order_placed`` uses parasignal's shared pool (64 threads): ``serve.py``
runs waitress with 16 threads and the signal has 4 receivers, so 16 x 4 =
64 receivers can wait on their services at once. The deadline keeps a stuck
service from holding a request thread for longer than two seconds.
"""

from __future__ import annotations

from parasignal import Signal

#: Sent by the view once an order is committed, with ``order_id`` and ``item``.
order_placed = Signal(name="shop.order_placed", timeout=2.0)
