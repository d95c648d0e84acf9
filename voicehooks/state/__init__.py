"""What the app remembers across requests and processes: the delivery stores and
duplicate suppression.
"""
