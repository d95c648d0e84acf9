"""From a decoded delivery to its answer: the registry of handlers and tools, and the
dispatcher that runs them.
"""
