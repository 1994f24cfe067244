"""Tests of the reports: markdown and HTML, from real logs."""
