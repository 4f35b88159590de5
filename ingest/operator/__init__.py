"""What operators look at: the analytics API, consumer lag and the dashboard."""
