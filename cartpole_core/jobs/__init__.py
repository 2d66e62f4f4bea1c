"""Background training, in roles:

- ``queue``: ``submit`` writes runs with status ``queued`` into the store; ``cancel_run`` asks one to stop.
- ``dispatch``: ``Dispatcher.pump()`` claims queued runs up to an executor's capacity, enforces cancels, notices
  dead runs; ``scheduler.Scheduler`` is the dashboard's thread that pumps it.
- ``executor``: the ``Executor`` interface (submit, poll, cancel, capacity, active); ``local.LocalExecutor`` trains
  each run in a worker process on this machine (``worker``: ``python -m cartpole_core.jobs.worker``).
- ``execution`` + ``sink``: ``execute_run`` trains one run in this process and writes everything it produces
  through a ``RunSink``; ``StoreSink`` writes into the local run store.

All but ``execution``'s training and ``worker`` are import-light (no torch, Gymnasium or scikit-learn).
"""
