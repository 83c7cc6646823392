"""Store → pandas DataFrames → seaborn plots and reports."""
