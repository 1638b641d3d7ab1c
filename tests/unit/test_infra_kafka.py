"""Local Kafka helpers that need no broker."""

from __future__ import annotations

import base64

from flinktrade.infra.kafka import new_cluster_id


def test_cluster_ids_are_16_bytes_base64url_and_never_look_like_an_option() -> None:
    ids = [new_cluster_id() for _ in range(3000)]  # a bad generator starts 1 in 64 with "-"
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
