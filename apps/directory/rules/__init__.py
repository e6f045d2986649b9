"""Rule-based groups: a group whose members are the users whose attributes match a rule.

conditions.py parses and validates a rule and compiles it twice from one definition: to a Q for the
set-wise SQL of a rule change, and to a Python predicate for the re-evaluation of one changed user.
attributes.py names what a rule may test (the directory's attribute registry). engine.py writes
membership diffs; services.py is what the edges call.
"""
