"""The thread side: roark's worker threads, where all network, disk and encoding work runs."""
