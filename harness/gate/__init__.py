"""The release gate: budgets (harness/gate/budgets.py) checked against stored results."""
