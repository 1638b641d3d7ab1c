"""Peer contenders for `make bench`: each is one process that needs no flinktrade import."""
