"""The release gate: budgets (harness/budgets.py) checked against stored results."""
