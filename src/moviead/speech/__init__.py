"""A spoken AD track: each description synthesised with eSpeak NG and placed in its cue on the film's timeline,
and optionally mixed into the film's audio with ducking and loudness normalisation.

- :mod:`moviead.speech.synth`: eSpeak NG through ``ctypes`` (from the ``espeakng-loader`` wheel, or a system
  ``libespeak-ng``); the choice is explained there;
- :mod:`moviead.speech.fitting`: measure the speech and raise the rate where it would overrun its cue;
- :mod:`moviead.speech.track`: the AD speech on the timeline (``<movie>.ad.wav``);
- :mod:`moviead.speech.mixing`: ducking, BS.1770 loudness, true peak (``<movie>.mix.wav``);
- :mod:`moviead.speech.audio_io`: film audio via PyAV, all-or-nothing WAV writes;
- :mod:`moviead.speech.commands`: ``moviead speak``.

Install: ``pip install 'moviead[audio]'`` (also part of the ``dev`` extra).
"""

from moviead.speech.synth import MissingAudioDependencyError, SynthesiserMissingError, synthesise

__all__ = ["MissingAudioDependencyError", "SynthesiserMissingError", "synthesise"]
