"""Backtest maths and reports: pure functions over replayed scores and labels."""
