"""FocusedAD's character-centric pipeline (SPEC §5.4, FocusedAD §3), plain torch/numpy (no Lightning).

- :mod:`~moviead.focused.char_bank`: best query per character by clustering its face embeddings (eqs. 1-3).
- :mod:`~moviead.focused.recognition`: faces → character names with a threshold τ, and the τ sweep (Fig. 7).
- :mod:`~moviead.focused.face_sets`: labelled face embeddings on disk (npz or folder).
- :mod:`~moviead.focused.faces`: MTCNN face detection + InceptionResnetV1 embeddings (extra ``faces``).
- :mod:`~moviead.focused.templates`: the dynamic instruction for 0 / 1 / n characters (released code's strings).
- :mod:`~moviead.focused.character_tokens`: box pooling of patch features, temporal token merge, token MLP.
- :mod:`~moviead.focused.data`: Storyboard-v2 examples with their detections, and the collate function.
- :mod:`~moviead.focused.prompt`: the decoder input with soft prompt, instruction and character tokens.
- :mod:`~moviead.focused.captioner`: :class:`FocusedCaptioner`, the Stage-II model.
- :mod:`~moviead.focused.commands`: ``moviead build-char-bank`` and ``moviead sweep-recognition``.

Importing this package loads nothing heavy; each module imports what it needs.
"""
