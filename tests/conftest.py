"""Our own tests use the fixtures users get (the ``roark`` pytest plugin)."""
