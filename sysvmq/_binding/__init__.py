"""The binding layer: the only code that touches the compiled module's cdata.

The rest of the package calls these modules' functions and the methods of
:class:`~sysvmq._binding.handle.Handle`, which take and return Python values; so does
the command line. Modules:

- ``c``: the compiled module, every C type realized at import, the platform's constants
  as Python ints, and views of a caller's buffer that are released at the end of a call.
- ``handle``: one open queue handle: its C state, sending and receiving, batches, peek,
  the async wait, msgctl on its queue, close; and the rule for a message taken whose
  caller cannot have it (it goes back to its queue).
- ``system``: what is not about one handle: msgget, msgctl on ids and on the kernel,
  ftok, the wake-up signal, the C side's notes for the logger, cancel tokens.
- ``process``: the process exits or forks: no thread it may stop holds a message.

The hot paths. Three methods of :class:`sysvmq.MessageQueue` call C directly, for speed:
``send``, ``receive`` and ``receive_message`` (one cffi call per message when nothing
goes wrong). They use the C functions ``handle`` exports for them (``put``, ``take``,
``take_type``, ``take_within``, ``return_held``, ``return_copy``) and the receive
buffers of the handle's free list, and fall back to the handle's methods for anything
else.
"""
