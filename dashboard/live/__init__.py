"""The live view: the feed (snapshots from the store), its JSON endpoint and its browser component."""
