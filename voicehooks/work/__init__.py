"""Work after the answer: the job, the in-process runner, and durable mode's Redis stream and
worker.
"""
