"""The way back into a live call: the platform's REST client, call control, late results of
slow tools, and reconciliation of reports that never came.
"""
