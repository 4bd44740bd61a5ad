"""Moving files between pods: a content-addressed store per pod, served
read-only over SFTP (paramiko), and pulled by hash (docs/architecture.md §6).
"""
