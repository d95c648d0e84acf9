"""The ground floor: events, signing, answers, errors, logs, calling user functions, the
records observers read. Imports nothing else of voicehooks.
"""
