"""`ibgp-tunnel doctor`: diagnose a live host (or a lab host) against the plan.

collect.py reads the live state, parse_*.py turn each tool's output into records,
expect.py reads what the Nix core rendered for the host, checks/ compares them
(root causes first), report.py prints the result, run.py ties it together.
"""
