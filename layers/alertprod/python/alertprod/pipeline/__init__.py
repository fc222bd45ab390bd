"""The per-CCD nightly processing: from an upload to alerts, exactly once."""
