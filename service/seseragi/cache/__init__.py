"""The exact-match result cache in Redis, and the bounded Redis connections it shares with jobs."""
