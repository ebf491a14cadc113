"""tuneforge.data: dataset formats, reading with file:line problems, sources, mixing, chat templates.

Only the torch-free, API-safe parts are re-exported here; the engine imports `tuneforge.data.tokenize`,
`tuneforge.data.packing` and `tuneforge.data.prepare` directly (the API process must not load them).
"""

from tuneforge.data.formats import FORMATTINGS, RecordFormat
from tuneforge.data.mixing import MixResult, mix_records
from tuneforge.data.reading import read_records, validate_file
from tuneforge.data.records import (
    ChatRecord,
    DatasetError,
    DatasetProblem,
    Message,
    TextRecord,
    ValidationReport,
)
from tuneforge.data.sources import DatasetConfigError, DatasetNotFound, DatasetSource, resolve_dataset_sources
from tuneforge.data.templates import TEMPLATE_NAMES, ChatTemplate, UnknownTemplate, fix_tokenizer, get_template

__all__ = [
    "FORMATTINGS",
    "TEMPLATE_NAMES",
    "ChatRecord",
    "ChatTemplate",
    "DatasetConfigError",
    "DatasetError",
    "DatasetNotFound",
    "DatasetProblem",
    "DatasetSource",
    "Message",
    "MixResult",
    "RecordFormat",
    "TextRecord",
    "UnknownTemplate",
    "ValidationReport",
    "fix_tokenizer",
    "get_template",
    "mix_records",
    "read_records",
    "resolve_dataset_sources",
    "validate_file",
]
