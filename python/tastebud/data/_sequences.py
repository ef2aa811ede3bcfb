"""Ordered item sequences (per user, or per session) built from ``Interactions``.

Sequence models (Item2Vec, next-item recommendation) need each user's items in the order they
were consumed, and often cut into sessions at long pauses. :class:`Sequences` holds them as
one concatenated int64 array of item indices plus an ``indptr`` (CSR-like), so kernels read
them without Python loops.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._interactions import Interactions
from ._sorting import lexsort
from ._validation import check_int, describe
from ._vocabulary import Vocabulary

__all__ = ["Sequences"]


class Sequences:
    """Item sequences in consumption order, as a ragged array.

    Sequence ``s`` is ``items[indptr[s]:indptr[s + 1]]`` (item indices into ``item_vocab``);
    it belongs to user index ``users[s]``. Sequences of one user are contiguous and in time
    order. Build them with :meth:`from_interactions`.

    Attributes
    ----------
    items : int64 ndarray (n_events,)
        Item indices of all sequences, concatenated.
    indptr : int64 ndarray (n_sequences + 1,)
        Sequence boundaries.
    users : int64 ndarray (n_sequences,)
        User index (into ``user_vocab``) of each sequence.
    timestamps : int64 ndarray (n_events,) or None
        Timestamp of each event, aligned with ``items``.
    user_vocab, item_vocab : Vocabulary
        The vocabularies of the source ``Interactions``.
    """

    def __init__(
        self,
        items: np.ndarray,
        indptr: np.ndarray,
        users: np.ndarray,
        timestamps: np.ndarray | None,
        user_vocab: Vocabulary,
        item_vocab: Vocabulary,
    ) -> None:
        self.items = items
        self.indptr = indptr
        self.users = users
        self.timestamps = timestamps
        self.user_vocab = user_vocab
        self.item_vocab = item_vocab

    @classmethod
    def from_interactions(
        cls,
        inter: Interactions,
        *,
        session_gap: int | None = None,
        min_length: int = 1,
    ) -> Sequences:
        """Each user's items ordered by timestamp, optionally split into sessions.

        Parameters
        ----------
        inter : Interactions
            Events are ordered by timestamp, ties broken by item index (the lower index comes
            first, consistent with ``split.last_n``). Without timestamps the order is the item
            index order (CSR order): fine for unordered baskets, meaningless as a sequence.
        session_gap : int, optional
            Start a new session where the time between two consecutive events of a user is
            strictly greater than ``session_gap`` (same unit as the timestamps, e.g. seconds;
            30 minutes = 1800 is the usual web-analytics rule). ``None``: one sequence per
            user. Needs timestamps.
        min_length : int
            Drop sequences (sessions) with fewer events. Users without events never yield a
            sequence.

        Returns
        -------
        Sequences
        """
        if not isinstance(inter, Interactions):
            raise TypeError(f"inter must be an Interactions; got {describe(inter)}.")
        min_length = check_int(min_length, "min_length", 1)
        rows = inter.row_indices()
        cols = np.asarray(inter.matrix.indices, dtype=np.int64)
        ts = inter.timestamps
        if session_gap is not None:
            if isinstance(session_gap, bool) or not isinstance(
                session_gap, (int, np.integer, float)
            ):
                raise TypeError(
                    f"session_gap must be a non-negative number or None; "
                    f"got {describe(session_gap)}."
                )
            if not np.isfinite(session_gap) or session_gap < 0:
                raise ValueError(
                    f"session_gap must be a non-negative number or None; got {session_gap!r}."
                )
            if ts is None:
                raise ValueError("session_gap needs interactions with timestamps; these have none.")
        if ts is None:
            order = np.arange(rows.size, dtype=np.int64)  # CSR: by user, then item index
        else:
            order = lexsort([rows, ts, cols])
        items = cols[order]
        srows = rows[order]
        sts = None if ts is None else np.asarray(ts)[order]
        starts = np.zeros(items.size, dtype=bool)
        if items.size:
            starts[0] = True
            np.not_equal(srows[1:], srows[:-1], out=starts[1:])
            if session_gap is not None and sts is not None:
                gap = np.diff(sts) > session_gap
                starts[1:] |= gap
        bounds = np.flatnonzero(starts).astype(np.int64)
        indptr = np.append(bounds, np.int64(items.size))
        users = srows[bounds]
        if min_length > 1 and bounds.size:
            lengths = np.diff(indptr)
            keep = lengths >= min_length
            event_keep = np.repeat(keep, lengths)
            items = items[event_keep]
            sts = None if sts is None else sts[event_keep]
            users = users[keep]
            indptr = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
        return cls(items, indptr, users.astype(np.int64), sts, inter.users, inter.items)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.indptr.size - 1)

    def __getitem__(self, s: int) -> np.ndarray:
        """Item indices of sequence ``s``."""
        n = len(self)
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"sequence index must be an int; got {describe(s)}.")
        if not -n <= s < n:
            raise IndexError(f"sequence index must lie in [-{n}, {n}); got {s}.")
        s = int(s) % n
        return self.items[self.indptr[s] : self.indptr[s + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for s in range(len(self)):
            yield self.items[self.indptr[s] : self.indptr[s + 1]]

    def __repr__(self) -> str:
        return f"Sequences(n_sequences={len(self)}, n_events={self.n_events})"

    @property
    def n_events(self) -> int:
        """Total number of events over all sequences."""
        return int(self.items.size)

    def lengths(self) -> np.ndarray:
        """Length of each sequence (int64)."""
        return np.diff(self.indptr)

    def to_lists(self) -> list[list[Any]]:
        """Sequences as lists of raw item ids (e.g. to feed another library)."""
        raw = self.item_vocab.ids(self.items).tolist()
        bounds = self.indptr.tolist()
        return [raw[a:b] for a, b in itertools.pairwise(bounds)]
