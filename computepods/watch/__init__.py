"""Watching a tree: inotify, the debounce, freshness of what a pod built."""
