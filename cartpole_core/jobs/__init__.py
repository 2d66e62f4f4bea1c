"""Background training: the queue, execution of a run, executors, the scheduler loop."""
