"""Text as people have it: paragraphs, markup and documents, translated sentence by sentence.

``prepare(text)`` gives the sentences to translate and ``restore`` puts their translations
back; ``translate_text(translator, texts)`` does both around one batch. Documents (gettext,
HTML, subtitles, Markdown, plain text) are in nmt.text.documents.
"""

from nmt.text.markup import FORMATS, Format
from nmt.text.prepare import Prepared, prepare
from nmt.text.translate import translate_text

__all__ = ["FORMATS", "Format", "Prepared", "prepare", "translate_text"]
