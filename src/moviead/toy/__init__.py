"""The toy data set (SPEC §3.3): a generator of movies in the MAD-v2, LSMDC and Storyboard-v2 on-disk formats, its
sentence grammar, and the tiny tokenizers and decoder written beside it; two worlds, v1 (:mod:`~moviead.toy.generator`,
the default) and v2 (:mod:`~moviead.toy.world_v2`). Kept apart from the readers in
:mod:`moviead.data`: the data layer reads real formats; this package only writes them."""
