"""Development tools the library never imports: the inspector, tool contracts and drift
against a saved assistant.
"""
