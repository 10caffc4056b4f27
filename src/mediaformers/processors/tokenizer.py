"""The tokenizer moved to ``processors/text/``; this path keeps working (same objects)."""
from .text.files import (  # noqa: F401
    _NO_LIMIT, CONFIG_FILE, SPECIAL_FILE, SPECIAL_NAMES, SPM_FILES, TOKENIZER_FILE, XLMR_CLASSES, XLMR_SPECIALS,
)
from .text.sentencepiece import (  # noqa: F401
    _converted_sentencepiece, _read_sentencepiece, read_sentencepiece, xlmr_from_sentencepiece, xlmr_pipeline,
)
from .text.tokenizer import Tokenizer, XLMRobertaTokenizer, XLMRobertaTokenizerFast  # noqa: F401
