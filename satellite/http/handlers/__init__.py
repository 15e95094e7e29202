"""Handlers parse, call one service, render."""
