"""Analysis.

Measurements, growth, evaluation with the LIVECell protocol, matching, comparison, proofreading edits.
"""
