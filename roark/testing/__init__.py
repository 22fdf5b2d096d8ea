"""Test helpers for roark users: a local contract-faithful Roark and scripted LiveKit parts."""
