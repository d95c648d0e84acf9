"""What a tool is: a typed function turned into a JSON Schema definition, and the model's
arguments coerced back into its parameters.
"""
