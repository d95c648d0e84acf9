"""What the tests share: paths, real servers, a private Redis, the chaos run, test doubles.

Test modules import from here and never from each other (tests/project/test_layout.py checks
it), so each test module can move, split or go without breaking another.
"""
